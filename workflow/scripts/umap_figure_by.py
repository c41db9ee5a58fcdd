"""Rule umap_figure_by: the UMAP grid of one (dataset, model) coloured by a nuisance attribute (umap.color_by)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.plots import umap_figure_by  # noqa: E402

with logged(snakemake.log[0]):
    umap_figure_by(snakemake.input.layouts, snakemake.input.manifest, snakemake.wildcards.attribute,
                   snakemake.output.figure, title=snakemake.params.title)
