"""Rule runtimes: every benchmark file under benchmarks/ -> a per-rule runtime and memory table and figure."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.plots import runtime_figure  # noqa: E402
from medprobe.report import make_runtimes  # noqa: E402

with logged(snakemake.log[0]):
    summary = make_runtimes(snakemake.params.benchmarks, snakemake.output.table, snakemake.output.html,
                            rule_order=snakemake.params.rule_order)
    runtime_figure(summary, snakemake.output.figure)
