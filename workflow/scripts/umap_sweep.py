"""Rule umap_sweep: results/embeddings/{dataset}/{model}.h5 -> results/umap/{dataset}/{model}/layouts.h5."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.umap_sweep import run_sweep  # noqa: E402

with logged(snakemake.log[0]):
    run_sweep(
        snakemake.input.embeddings,
        snakemake.output.layouts,
        snakemake.output.metrics,
        n_neighbors=snakemake.params.n_neighbors,
        min_dist=snakemake.params.min_dist,
        metric=snakemake.params.metric,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
        optimizer=snakemake.params.optimizer,
        metrics=snakemake.params.metrics,
    )
