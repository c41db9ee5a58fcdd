"""Rule embed: results/manifests/{dataset}.tsv -> results/embeddings/{dataset}/{model}.h5."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from medprobe.embed import embed_dataset  # noqa: E402
from medprobe.logs import logged  # noqa: E402

with logged(snakemake.log[0]) as log_stream:
    embed_dataset(
        snakemake.wildcards.dataset,
        snakemake.wildcards.model,
        snakemake.params.spec,
        snakemake.input.manifest,
        snakemake.output.embeddings,
        class_names=snakemake.params.classes,
        device=snakemake.params.device,
        threads=snakemake.threads,
        max_failed=snakemake.params.max_failed,
        progress_file=log_stream,
    )
