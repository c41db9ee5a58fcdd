"""Rule embed: manifest + fetched weights -> results/embeddings/{dataset}/{model}.h5 (no network access)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.weights import cache_env, offline_env  # noqa: E402

os.environ.update({**cache_env(snakemake.params.weights_dir), **offline_env()})  # before torch/transformers load

from medprobe.embed import embed_dataset  # noqa: E402
from medprobe.logs import logged  # noqa: E402

with logged(snakemake.log[0]) as log_stream:
    embed_dataset(
        snakemake.wildcards.dataset,
        snakemake.wildcards.model,
        snakemake.params.spec,
        snakemake.input.manifest,
        snakemake.output.embeddings,
        weights_json=snakemake.input.weights,
        class_names=snakemake.params.classes,
        device=snakemake.params.device,
        threads=snakemake.threads,
        max_failed=snakemake.params.max_failed,
        amp=snakemake.params.amp,
        jpeg_draft=snakemake.params.jpeg_draft,
        channels_last=snakemake.params.channels_last,
        progress_file=log_stream,
        invert=snakemake.params.invert,
    )
