"""Rule thumbnails: manifest -> results/thumbnails/{dataset}/ (one small JPEG per image) and its table."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

from medprobe.explorer import make_thumbnails  # noqa: E402
from medprobe.logs import logged  # noqa: E402

with logged(snakemake.log[0]):
    make_thumbnails(
        snakemake.input.manifest,
        snakemake.output.thumbnails,
        snakemake.output.table,
        px=snakemake.params.px,
        budget_mb=snakemake.params.budget_mb,
        quality=snakemake.params.quality,
        threads=snakemake.threads,
    )
