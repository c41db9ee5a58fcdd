"""Rule paired_tests: every model's hold-out predictions on a dataset -> results/tables/paired/{dataset}.tsv."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.paired import run_paired  # noqa: E402
from medprobe.report import tsv_to_html  # noqa: E402

with logged(snakemake.log[0]):
    run_paired(dict(zip(snakemake.params.models, snakemake.input.predictions)), snakemake.output.table,
               dataset_id=snakemake.wildcards.dataset, n_permutations=snakemake.params.permutations,
               seed=snakemake.params.seed)
    tsv_to_html(snakemake.output.table, snakemake.output.html,
                f"Paired comparisons on {snakemake.wildcards.dataset}: hold-out predictions, all folds")
