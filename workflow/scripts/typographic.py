"""Rule typographic: clean + overlaid embeddings -> results/bias/{dataset}/{model}.tsv."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.typographic import run_typographic  # noqa: E402

with logged(snakemake.log[0]):
    run_typographic(
        snakemake.input.embeddings,
        snakemake.input.overlays,
        snakemake.output.table,
        dataset_id=snakemake.wildcards.dataset,
        model_id=snakemake.wildcards.model,
        n_folds=snakemake.params.n_folds,
        seed=snakemake.params.seed,
        n_boot=snakemake.params.n_boot,
    )
