"""Rule explorer_page: manifest, split, thumbnails, every model's layouts and hold-out predictions ->
results/explorer/{dataset}/ (index.html, thumbs/, layouts/)."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.explorer import build_explorer  # noqa: E402
from medprobe.logs import logged  # noqa: E402

with logged(snakemake.log[0]):
    models = snakemake.params.models
    build_explorer(
        snakemake.wildcards.dataset,
        snakemake.input.manifest,
        snakemake.input.split,
        snakemake.input.thumbnails,
        snakemake.input.thumbnail_table,
        dict(zip(models, snakemake.input.layouts)),
        snakemake.output.page,
        model_names=snakemake.params.model_names,
        predictions=dict(zip(models, snakemake.input.predictions)),
        ocr_path=snakemake.input.get("ocr"),
        class_names=snakemake.params.classes,
        dataset_name=snakemake.params.dataset_name,
        max_listed=snakemake.params.max_listed,
    )
