"""Rule table3_tables: every dlilp_zeroshot file -> Table 3's layout and the comparison with the published Table 3."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.transfer_tables import make_table3  # noqa: E402

with logged(snakemake.log[0]):
    make_table3(snakemake.input.tables, models=snakemake.params.models, datasets=snakemake.params.datasets,
                params=snakemake.params.zeroshot, published=snakemake.params.published,
                outputs=dict(snakemake.output.items()))
