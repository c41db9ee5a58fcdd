"""BreakHis v1 (BreaKHis_v1.tar.gz): histology_slides/breast/{benign,malignant}/SOB/<subtype>/<patient folder>/
<40X|100X|200X|400X>/SOB_<B|M>_<subtype>-<year>-<slide id>-<magnification>-<seq>.png, all magnifications.

The group is the patient: year and slide id from the file name (SOB_B_TA-14-4659-40-001.png -> 14-4659). Only the
histology_slides tree is read: the release's mkfold/ folder holds copies of the same images for its own folds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

from medprobe.datasets.base import Candidate, Listing, matches_any

NAME = re.compile(r"^SOB_(?P<kind>[BM])_(?P<subtype>[A-Z]+)-(?P<year>\d+)-(?P<slide>[0-9A-Za-z]+)-(?P<mag>\d+)-"
                  r"(?P<seq>\d+)\.png$", re.IGNORECASE)
TREE = Path("histology_slides") / "breast"


def patient_id(file_name: str) -> str | None:
    match = NAME.match(file_name)
    return f"{match['year']}-{match['slide']}" if match else None


def list_samples(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 spec: Mapping | None = None) -> Listing:
    root = Path(root)
    classes = list(classes or ["benign", "malignant"])
    issues, candidates = [], []
    for name in classes:
        folder = root / TREE / name
        if not folder.is_dir():
            issues.append((str(folder), "missing_class", "registered class has no folder in histology_slides/breast"))
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relpath = path.relative_to(root).as_posix()
            if matches_any(relpath, exclude):
                issues.append((str(path), "excluded", "matches the registry's exclude pattern"))
                continue
            group = patient_id(path.name)
            if group is None:
                issues.append((str(path), "unexpected_file", "name does not follow SOB_<B|M>_<type>-<year>-<id>-"
                                                             "<mag>-<seq>.png; not a sample"))
                continue
            candidates.append(Candidate(sample_id=relpath, path=str(path), class_name=name, group=group))
    return Listing(root=root, class_names=classes, candidates=candidates, issues=issues)
