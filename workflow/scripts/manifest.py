"""Rule manifest: the dataset's image folder -> results/manifests/{dataset}.tsv and .issues.tsv."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.manifest import make_dataset_manifest  # noqa: E402
from medprobe.registry import obtain_hint  # noqa: E402

with logged(snakemake.log[0]):
    make_dataset_manifest(
        snakemake.wildcards.dataset,
        snakemake.params.spec,
        snakemake.params.root,
        snakemake.output.manifest,
        snakemake.output.issues,
        count_mismatch=snakemake.params.count_mismatch,
        duplicates=snakemake.params.duplicates,
        threads=snakemake.threads,
        obtain=obtain_hint(snakemake.params.spec, snakemake.params.data_root),
    )
