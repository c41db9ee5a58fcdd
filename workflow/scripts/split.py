"""Rule split: results/manifests/{dataset}.tsv -> results/splits/{dataset}.tsv."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.split import split_dataset  # noqa: E402

with logged(snakemake.log[0]):
    split_dataset(
        snakemake.input.manifest,
        snakemake.output.split,
        snakemake.output.issues,
        dataset_id=snakemake.wildcards.dataset,
        seed=snakemake.params.seed,
        holdout_fraction=snakemake.params.holdout_fraction,
        n_folds=snakemake.params.n_folds,
        group_aware=snakemake.params.group_aware,
    )
