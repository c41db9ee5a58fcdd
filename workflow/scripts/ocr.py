"""Rule ocr: every image of the manifest read by Tesseract -> results/manifests/{dataset}.ocr.tsv."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.ocr import run_ocr  # noqa: E402

with logged(snakemake.log[0]):
    run_ocr(snakemake.input.manifest, snakemake.output.ocr, threads=snakemake.threads)
