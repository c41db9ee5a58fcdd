"""Rule umap_figure: results/umap/{dataset}/{model}/layouts.h5 -> results/figures/umap/{dataset}/{model}.png."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.plots import umap_figure  # noqa: E402

with logged(snakemake.log[0]):
    umap_figure(snakemake.input.layouts, snakemake.output.figure, title=snakemake.params.title)
