"""Rule umap_summary: every model's metrics.tsv of a dataset -> a models x metrics figure and table."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.plots import umap_summary  # noqa: E402
from medprobe.report import tsv_to_html  # noqa: E402

with logged(snakemake.log[0]):
    umap_summary(snakemake.input.metrics, snakemake.output.figure, snakemake.output.table,
                 models=snakemake.params.models, title=snakemake.params.title)
    tsv_to_html(snakemake.output.table, snakemake.output.html, f"UMAP layout metrics: {snakemake.params.title}")
