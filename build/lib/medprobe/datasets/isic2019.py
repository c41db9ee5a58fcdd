"""ISIC 2019 training set: ISIC_2019_Training_GroundTruth.csv (one-hot MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK),
ISIC_2019_Training_Metadata.csv (lesion_id), images in ISIC_2019_Training_Input/<image>.jpg.

The group is lesion_id; images without one (about 2,000 of the older HAM/MSK images) get their own image id as
group, so a group-aware split never merges them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from medprobe.datasets.base import Listing
from medprobe.datasets.csv_table import build_listing, one_hot_label, read_rows, require_columns

CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


def list_samples(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 spec: Mapping | None = None) -> Listing:
    root = Path(root)
    classes = list(classes or CLASSES)
    truth = root / "ISIC_2019_Training_GroundTruth.csv"
    rows = read_rows(truth)
    require_columns(rows, ["image", *classes, "UNK"], truth)
    meta_path = root / "ISIC_2019_Training_Metadata.csv"
    lesions = {}
    if meta_path.is_file():
        meta = read_rows(meta_path)
        require_columns(meta, ["image", "lesion_id"], meta_path)
        lesions = {r["image"]: r["lesion_id"] for r in meta}
    entries = []
    for row in rows:
        relpath = f"ISIC_2019_Training_Input/{row['image']}.jpg"
        label = one_hot_label(row, classes, extra=("UNK",))
        entries.append((row["image"], relpath, label, lesions.get(row["image"]) or row["image"]))
    listing = build_listing(root, entries, classes, exclude, truth)
    if not meta_path.is_file():
        listing.issues.append((str(meta_path), "missing_metadata", "no lesion ids: every image is its own group"))
    return listing
