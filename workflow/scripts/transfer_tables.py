"""Rule transfer_tables: every transfer file -> Table 4's layout, the comparison with the published Table 4, and the
table and figure of ACA against K."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.transfer_tables import make_transfer_tables  # noqa: E402

with logged(snakemake.log[0]):
    params = snakemake.params
    make_transfer_tables(snakemake.input.tables, models=params.models, datasets=params.datasets,
                         table_shots=str(params.transfer["table_shots"]), published=params.published,
                         outputs=dict(snakemake.output.items()), folds=params.transfer["folds"])
