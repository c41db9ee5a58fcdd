"""Releases described by a table: a CSV names each image and its label (the generic `csv` adapter, ISIC 2019's
one-hot ground truth, HiCervix's train.csv, DeepDRiD's per-eye grades).

Registry keys of a `csv` entry (all paths relative to the dataset root):
  csv: {file: labels.csv, path_column: image, label_column: diagnosis, group_column: patient,
        path_template: "images/{image}.jpg", one_hot: [MEL, NV, ...], groups_file: meta.csv, groups_key: image}
`label_column` holds class names; `one_hot` instead names one 0/1 column per class (in label order).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

from medprobe.datasets.base import Candidate, Listing, matches_any, outside_root
from medprobe.errors import DatasetError


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DatasetError(f"{path}: label file not found; it comes with the release (see the registry's obtain)")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def require_columns(rows: list[dict], columns: Sequence[str], source: Path) -> None:
    present = set(rows[0]) if rows else set()
    missing = [c for c in columns if c and c not in present]
    if missing:
        raise DatasetError(f"{source}: column(s) {', '.join(missing)} not found (columns: {', '.join(sorted(present))})")


def one_hot_label(row: Mapping[str, str], columns: Sequence[str], extra: Sequence[str] = ()) -> str | None:
    """The single class whose column is 1, or None when zero or several are."""
    hot = [c for c in (*columns, *extra) if float(row[c] or 0) == 1.0]
    return hot[0] if len(hot) == 1 and hot[0] in columns else None


def build_listing(root: Path, entries, classes: Sequence[str], exclude: Sequence[str], source: Path,
                  ignore_classes: Sequence[str] = ()) -> Listing:
    """Candidates from (sample_id, relpath, class_name, group) tuples: missing files and unknown classes are issues."""
    issues, candidates = [], []
    for sample_id, relpath, class_name, group in entries:
        path = root / relpath
        if class_name is None:
            issues.append((str(path), "no_label", f"{source.name}: no single class for this row"))
            continue
        if class_name in ignore_classes:
            issues.append((str(path), "ignored_class", f"{source.name}: class {class_name!r} is listed under "
                                                       f"ignore_classes; left out"))
            continue
        if class_name not in classes:
            issues.append((str(path), "unexpected_class", f"{source.name}: class {class_name!r} is not one of "
                                                           f"the registry's classes"))
            continue
        pattern = matches_any(relpath, exclude)
        if pattern:
            issues.append((str(path), "excluded", f"matches the registry's exclude pattern {pattern!r}"))
            continue
        if outside_root(root, path):
            issues.append((str(path), "outside_root", f"{source.name}: the path leaves the dataset root"))
            continue
        if not path.is_file():
            issues.append((str(path), "missing_file", f"listed in {source.name} but not on disk"))
            continue
        candidates.append(Candidate(sample_id=sample_id, path=str(path), class_name=class_name, group=group))
    return Listing(root=root, class_names=list(classes), candidates=candidates, issues=issues)


def list_samples(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 spec: Mapping | None = None) -> Listing:
    """The generic `csv` adapter."""
    root = Path(root)
    table = dict((spec or {}).get("csv") or {})
    if "file" not in table:
        raise DatasetError("the csv adapter needs a `csv:` block with at least `file` in the dataset's entry")
    source = root / table["file"]
    rows = read_rows(source)
    path_column = table.get("path_column", "path")
    one_hot = table.get("one_hot")
    require_columns(rows, [path_column, table.get("label_column", "label") if not one_hot else "",
                           table.get("group_column", ""), *(one_hot or [])], source)
    if classes is None:
        ignored = set((spec or {}).get("ignore_classes") or ())
        classes = list(one_hot) if one_hot else sorted({r[table.get("label_column", "label")] for r in rows} - ignored)
    template = table.get("path_template", "{" + path_column + "}")
    groups = {}
    if table.get("groups_file"):
        group_rows = read_rows(root / table["groups_file"])
        key = table.get("groups_key", path_column)
        require_columns(group_rows, [key, table["group_column"]], root / table["groups_file"])
        groups = {r[key]: r[table["group_column"]] for r in group_rows}
    entries = []
    for row in rows:
        label = one_hot_label(row, one_hot, table.get("ignore_columns", ())) if one_hot else \
            row[table.get("label_column", "label")]
        if table.get("groups_file"):
            group = groups.get(row[table.get("groups_key", path_column)], "")
        else:
            group = row.get(table.get("group_column", ""), "") or ""
        relpath = template.format(**row)
        entries.append((relpath, relpath, label, group))
    return build_listing(root, entries, classes, exclude, source, (spec or {}).get("ignore_classes") or ())
