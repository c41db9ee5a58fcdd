"""Rule bias_audit: clean + overlaid embeddings and the manifest -> results/bias/{dataset}/{model}.tsv (the typographic
probe's and the nuisance audit's rows)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.typographic import run_bias_audit  # noqa: E402

with logged(snakemake.log[0]):
    run_bias_audit(
        snakemake.input.embeddings,
        snakemake.input.overlays,
        snakemake.input.manifest,
        snakemake.output.table,
        dataset_id=snakemake.wildcards.dataset,
        model_id=snakemake.wildcards.model,
        n_folds=snakemake.params.n_folds,
        seed=snakemake.params.seed,
        n_boot=snakemake.params.n_boot,
        knn_k=snakemake.params.knn_k,
        ocr_path=snakemake.input.get("ocr"),
    )
