"""Rule transfer: embeddings -> results/transfer/{dataset}/{model}.tsv (the DLILP study's K-shot probe per fold)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.transfer import run_transfer  # noqa: E402

with logged(snakemake.log[0]):
    run_transfer(snakemake.input.embeddings, snakemake.output.transfer, dataset_id=snakemake.wildcards.dataset,
                 model_id=snakemake.wildcards.model, params=snakemake.params.transfer)
