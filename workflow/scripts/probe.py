"""Rule probe: embeddings + split -> results/probe/{dataset}/{model}.tsv (the paper's LinearSVC protocol)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.probe import run_probe  # noqa: E402

with logged(snakemake.log[0]):
    run_probe(
        snakemake.input.embeddings,
        snakemake.input.split,
        snakemake.output.probe,
        snakemake.output.predictions,
        dataset_id=snakemake.wildcards.dataset,
        model_id=snakemake.wildcards.model,
        params=snakemake.params.probe,
        seed=snakemake.params.seed,
    )
