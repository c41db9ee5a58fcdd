"""Rule dlilp_zeroshot: embeddings + the model's checkpoint (and Bio_ClinicalBERT's tokenizer files) ->
results/dlilp_zeroshot/{dataset}/{model}.tsv (the DLILP study's zero-shot protocol, offline)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.weights import cache_env, offline_env  # noqa: E402

os.environ.update({**cache_env(snakemake.params.weights_dir), **offline_env()})

from medprobe.cxr_zeroshot import run_dlilp_zeroshot  # noqa: E402
from medprobe.logs import logged  # noqa: E402

with logged(snakemake.log[0]):
    run_dlilp_zeroshot(snakemake.input.embeddings, snakemake.input.weights, snakemake.output.zeroshot,
                       dataset_id=snakemake.wildcards.dataset, model_id=snakemake.wildcards.model,
                       model_spec=snakemake.params.model, params=snakemake.params.zeroshot)
