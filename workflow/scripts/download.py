"""Rule download: make sure the dataset is on disk (public sources fetched once) -> results/datasets/{dataset}.json."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.datasets.download import prepare_dataset  # noqa: E402
from medprobe.logs import logged  # noqa: E402
from medprobe.registry import obtain_hint  # noqa: E402

with logged(snakemake.log[0]):
    prepare_dataset(snakemake.wildcards.dataset, snakemake.params.spec, snakemake.params.root,
                    snakemake.params.data_root, snakemake.output.record,
                    obtain=obtain_hint(snakemake.params.spec, snakemake.params.data_root))
