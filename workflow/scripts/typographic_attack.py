"""Rule typographic_attack: clean and class-name-overlaid embeddings + the text tower ->
results/bias/{dataset}/{model}.attack.tsv (models with a text tower)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.weights import cache_env, offline_env  # noqa: E402

os.environ.update({**cache_env(snakemake.params.weights_dir), **offline_env()})  # before transformers loads

from medprobe.logs import logged  # noqa: E402
from medprobe.zeroshot import run_typographic_attack  # noqa: E402

with logged(snakemake.log[0]):
    run_typographic_attack(
        snakemake.input.embeddings,
        snakemake.input.overlays,
        snakemake.input.weights,
        snakemake.output.table,
        dataset_id=snakemake.wildcards.dataset,
        model_id=snakemake.wildcards.model,
        model_spec=snakemake.params.model,
        dataset_spec=snakemake.params.dataset,
    )
