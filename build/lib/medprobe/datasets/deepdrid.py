"""DeepDRiD regular fundus training set: regular-fundus-training.csv + Images/<patient_id>/<image_id>.jpg.

Each CSV row fills exactly one of left_eye_DR_Level / right_eye_DR_Level: that value (0-4) is the image's grade,
whatever the _l/_r in its name says (the release swaps a few). The group is patient_id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from medprobe.datasets.base import Listing
from medprobe.datasets.csv_table import build_listing, read_rows, require_columns

GRADE_COLUMNS = ("left_eye_DR_Level", "right_eye_DR_Level")


def grade(row: Mapping[str, str]) -> str | None:
    values = [row[c].strip() for c in GRADE_COLUMNS if row.get(c, "").strip() != ""]
    if len(values) != 1:
        return None
    return str(int(float(values[0])))


def list_samples(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 spec: Mapping | None = None) -> Listing:
    root = Path(root)
    source = root / (spec or {}).get("csv", {}).get("file", "regular-fundus-training.csv")
    rows = read_rows(source)
    require_columns(rows, ["patient_id", "image_id", *GRADE_COLUMNS], source)
    classes = list(classes or ["0", "1", "2", "3", "4"])
    names = {str(i): name for i, name in enumerate(classes)}
    entries = []
    for row in rows:
        relpath = f"Images/{row['patient_id']}/{row['image_id']}.jpg"
        value = grade(row)
        entries.append((relpath, relpath, names.get(value) if value is not None else None, row["patient_id"]))
    return build_listing(root, entries, classes, exclude, source)
