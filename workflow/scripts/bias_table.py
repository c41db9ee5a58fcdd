"""Rule bias_table: every (dataset, model) bias audit file -> results/tables/bias.{tsv,md,html}."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.report import tsv_to_html  # noqa: E402
from medprobe.typographic import make_bias_table  # noqa: E402

with logged(snakemake.log[0]):
    make_bias_table([*snakemake.input.tables, *snakemake.input.attacks], models=snakemake.params.models, datasets=snakemake.params.datasets,
                    out_tsv=snakemake.output.table, out_md=snakemake.output.markdown)
    tsv_to_html(snakemake.output.table, snakemake.output.html, "Typographic probe")
