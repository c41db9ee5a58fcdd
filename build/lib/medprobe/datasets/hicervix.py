"""HiCervix: train.csv (image_name, class_name, class_id, level_1, level_2, level_3) + train/<image_name>.

Labels are `class_name` as released (the finest annotated level of each cell); class order follows class_id. The
release has no slide ids, so there are no groups. Registry `csv: {label_column: level_1}` picks a coarser level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from medprobe.datasets.base import Listing
from medprobe.datasets.csv_table import build_listing, read_rows, require_columns


def list_samples(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 spec: Mapping | None = None) -> Listing:
    root = Path(root)
    table = dict((spec or {}).get("csv") or {})
    source = root / table.get("file", "train.csv")
    column = table.get("label_column", "class_name")
    rows = read_rows(source)
    require_columns(rows, ["image_name", column], source)
    if not classes:
        if column == "class_name" and "class_id" in rows[0]:
            order = sorted({(int(r["class_id"]), r["class_name"]) for r in rows})
            classes = [name for _, name in order if name not in ((spec or {}).get("ignore_classes") or ())]
        else:
            classes = sorted({r[column] for r in rows if r[column]} - set((spec or {}).get("ignore_classes") or ()))
    image_dir = table.get("image_dir", "train")
    entries = [(r["image_name"], f"{image_dir}/{r['image_name']}", r[column] or None, "") for r in rows]
    return build_listing(root, entries, list(classes), exclude, source, (spec or {}).get("ignore_classes") or ())
