"""Burned-in text, found by OCR once per dataset: every token Tesseract reads on every image, with its box.

results/manifests/{dataset}.ocr.tsv: sample_id, token, left, top, width, height, conf (boxes in the image's own
pixels; an image with no text has one row with an empty token). Burned-in annotations are light on a dark or
textured background, so each image is read as gray, upscaled to a short side of about 1,024 px, and binarized at
each of `thresholds` (pixels at or above it become black ink on white), Tesseract's sparse-text mode (--psm 11);
tokens are upper-cased, stripped to letters and digits, and kept at a confidence >= min_conf (30: the
words the typographic probe writes are read back at 45 of 45 demo images this way, tests/test_bias.py). The nuisance audit uses
each image's set of words as an attribute (`burned_in_text`) and whether it has any (`has_text`).
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import pandas as pd
from PIL import Image

from medprobe import files
from medprobe.errors import ToolError

log = logging.getLogger(__name__)

OCR_COLUMNS = ["sample_id", "token", "left", "top", "width", "height", "conf"]
INSTALL = ("install the Tesseract OCR engine: apt-get install tesseract-ocr (Debian, Ubuntu), dnf install tesseract "
           "(Fedora), brew install tesseract (macOS) or conda install -c conda-forge tesseract; and the Python "
           "binding: pip install pytesseract")


def require_engine() -> str:
    """The Tesseract version, or a ToolError naming the install step (never a silent skip)."""
    try:
        import pytesseract
    except ImportError as err:
        raise ToolError(f"OCR needs pytesseract, which is not installed: {INSTALL}") from err
    try:
        return str(pytesseract.get_tesseract_version())
    except (pytesseract.TesseractNotFoundError, OSError) as err:
        raise ToolError(f"OCR needs the Tesseract engine, not found ({pytesseract.pytesseract.tesseract_cmd!r}): "
                        f"{INSTALL}. Or switch the OCR attribute off with bias.ocr: false.") from err


def read_tokens(image: Image.Image, *, thresholds: Sequence[int] = (254, 240, 200), target: int = 1024,
                min_conf: float = 30.0) -> list[dict]:
    """Every token read on the image at any threshold (one entry per token and place), boxes in image pixels."""
    import pytesseract

    scale = max(1, min(4, round(target / max(1, min(image.size)))))
    gray = image.convert("L").resize((image.width * scale, image.height * scale), Image.LANCZOS)
    found: dict[tuple[str, int, int], dict] = {}
    for threshold in thresholds:
        ink = gray.point(lambda v, t=threshold: 0 if v >= t else 255)
        data = pytesseract.image_to_data(ink, config="--psm 11", output_type=pytesseract.Output.DICT)
        for text, conf, left, top, width, height in zip(data["text"], data["conf"], data["left"], data["top"],
                                                        data["width"], data["height"]):
            token = re.sub(r"[^A-Z0-9]", "", str(text).upper())
            if len(token) < 2 or float(conf) < min_conf:
                continue
            box = dict(token=token, left=left // scale, top=top // scale, width=max(1, width // scale),
                       height=max(1, height // scale), conf=float(conf))
            key = (token, box["left"] // 8, box["top"] // 8)
            if key not in found or found[key]["conf"] < box["conf"]:
                found[key] = box
    return sorted(found.values(), key=lambda b: (b["top"], b["left"]))


def run_ocr(manifest_path: str | Path, out_path: str | Path, *, threads: int = 1,
            thresholds: Sequence[int] = (254, 240, 200), min_conf: float = 30.0) -> pd.DataFrame:
    """The `ocr` rule: every image of the manifest read once."""
    from medprobe.imageio import load_rgb
    from medprobe.manifest import read_manifest

    version = require_engine()
    manifest = read_manifest(manifest_path)
    log.info("OCR of %d images with Tesseract %s, %d thread(s)", len(manifest), version, threads)

    def one(row) -> list[dict]:
        tokens = read_tokens(load_rgb(row.path), thresholds=thresholds, min_conf=min_conf)
        return [dict(sample_id=row.sample_id, **t) for t in tokens] or [
            dict(sample_id=row.sample_id, token="", left=0, top=0, width=0, height=0, conf=0.0)]

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # tesseract runs as a subprocess per image
        rows = [r for result in pool.map(one, manifest.itertuples(index=False)) for r in result]
    table = pd.DataFrame(rows, columns=OCR_COLUMNS)
    files.write_tsv(out_path, table)
    with_text = table.loc[table["token"] != "", "sample_id"].nunique()
    common = table.loc[table["token"] != "", "token"].value_counts().head(10)
    log.info("%d of %d images have text; most common tokens: %s", with_text, len(manifest),
             ", ".join(f"{t} ({n})" for t, n in common.items()))
    return table
