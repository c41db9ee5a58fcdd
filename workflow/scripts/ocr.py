"""Rule ocr: every image of the manifest read by Tesseract -> results/manifests/{dataset}.ocr.tsv."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")

from medprobe.logs import logged  # noqa: E402
from medprobe.ocr import run_ocr  # noqa: E402

with logged(snakemake.log[0]):
    run_ocr(snakemake.input.manifest, snakemake.output.ocr, threads=snakemake.threads)
