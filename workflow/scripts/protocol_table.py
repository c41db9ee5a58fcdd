"""Rules fewshot_table and zeroshot_table: every model's few-shot or zero-shot file -> one table (tsv and md)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.report import tsv_to_html  # noqa: E402
from medprobe.tables import make_protocol_table  # noqa: E402

FEWSHOT = snakemake.rule == "fewshot_table"

TITLE = "Few-shot linear probe (logistic regression)" if FEWSHOT else "Zero-shot classification"

with logged(snakemake.log[0]):
    make_protocol_table(snakemake.input.tables, "shots" if FEWSHOT else "prompt_set",
                        models=snakemake.params.models, datasets=snakemake.params.datasets,
                        out_tsv=snakemake.output.table, out_md=snakemake.output.markdown,
                        title=TITLE)
    tsv_to_html(snakemake.output.table, snakemake.output.html, TITLE)
    if FEWSHOT:  # the same results at a glance: models x K, and the metric against K
        from medprobe.shots import write_shot_views  # noqa: E402

        write_shot_views(snakemake.output.table, models=snakemake.params.models, datasets=snakemake.params.datasets,
                         out_tsv=snakemake.output.shots_table, out_md=snakemake.output.shots_markdown,
                         out_html=snakemake.output.shots_html, out_png=snakemake.output.shots_figure)
