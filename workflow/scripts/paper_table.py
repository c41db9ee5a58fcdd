"""Rule paper_table: every probe file -> results/tables/paper_table.{tsv,md} and summary.tsv."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.report import tsv_to_html  # noqa: E402
from medprobe.tables import make_tables  # noqa: E402

with logged(snakemake.log[0]):
    make_tables(
        snakemake.input.probes,
        weights_records=snakemake.input.weights,
        embeddings=snakemake.input.embeddings,
        models=snakemake.params.models,
        datasets=snakemake.params.datasets,
        out_tsv=snakemake.output.table,
        out_md=snakemake.output.markdown,
        out_summary=snakemake.output.summary,
        out_tex=snakemake.output.latex,
        published=snakemake.params.published,
        out_vs_tsv=snakemake.output.vs_published,
        out_vs_md=snakemake.output.vs_published_md,
        **snakemake.params.table,
    )
    tsv_to_html(snakemake.output.table, snakemake.output.html, "The paper table: LinearSVC on frozen features",
                note="Hold-out accuracy and F1 in percent, mean ± std over the cross-validation fold models.")
    tsv_to_html(snakemake.output.vs_published, snakemake.output.vs_published_html,
                "This run beside the published table")
