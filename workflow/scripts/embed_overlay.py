"""Rule embed_overlay: the hold-out images with every word written on them -> results/bias/overlays/{dataset}/{model}.h5."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.weights import cache_env, offline_env  # noqa: E402

os.environ.update({**cache_env(snakemake.params.weights_dir), **offline_env()})  # before torch/transformers load

from medprobe.logs import logged  # noqa: E402
from medprobe.embed_overlay import embed_overlays  # noqa: E402

with logged(snakemake.log[0]) as log_stream:
    embed_overlays(
        snakemake.wildcards.dataset,
        snakemake.wildcards.model,
        snakemake.params.spec,
        snakemake.input.manifest,
        snakemake.input.split,
        snakemake.output.embeddings,
        snakemake.params.bias,
        weights_json=snakemake.input.weights,
        class_names=snakemake.params.classes,
        device=snakemake.params.device,
        threads=snakemake.threads,
        seed=snakemake.params.seed,
        progress_file=log_stream,
    )
