"""Rule fewshot: embeddings + split -> results/fewshot/{dataset}/{model}.tsv (K shots per class, logistic regression)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.fewshot import run_fewshot  # noqa: E402
from medprobe.logs import logged  # noqa: E402

with logged(snakemake.log[0]):
    run_fewshot(snakemake.input.embeddings, snakemake.input.split, snakemake.output.fewshot,
                dataset_id=snakemake.wildcards.dataset, model_id=snakemake.wildcards.model,
                params=snakemake.params.fewshot, seed=snakemake.params.seed)
