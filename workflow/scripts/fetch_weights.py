"""Rule fetch_weights: model id -> results/weights/{model}.json (network allowed; runs on the login node)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.weights import cache_env  # noqa: E402

os.environ.update(cache_env(snakemake.params.weights_dir))  # before any library reads its cache location

from medprobe.logs import logged  # noqa: E402
from medprobe.weights import fetch_weights  # noqa: E402

with logged(snakemake.log[0]):
    fetch_weights(snakemake.wildcards.model, snakemake.params.spec, snakemake.output.record,
                  local_path=snakemake.params.local_path or None)
