"""Images stored as arrays in a NumPy archive (MedMNIST: PneumoniaMNIST's `pneumoniamnist_224.npz`).

Registry keys: root = the .npz file; npz: {images: train_images, labels: train_labels}. Labels are class indices in
the registry's class order. Each sample's path is "<file.npz>::<images key>/<row>"; sample ids are "<split>/<row>".
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from medprobe.datasets.base import NPZ_MEMBER, Candidate, Listing
from medprobe.errors import DatasetError


def list_samples(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 spec: Mapping | None = None) -> Listing:
    root = Path(root)
    keys = dict((spec or {}).get("npz") or {"images": "train_images", "labels": "train_labels"})
    if not root.is_file():
        raise DatasetError(f"{root}: not a file; the npz adapter's root is the .npz archive itself")
    with np.load(root) as archive:
        missing = [k for k in (keys["images"], keys["labels"]) if k not in archive.files]
        if missing:
            raise DatasetError(f"{root}: no array(s) {', '.join(missing)} (arrays: {', '.join(archive.files)})")
        labels = np.asarray(archive[keys["labels"]]).reshape(-1)
        n_images = archive[keys["images"]].shape[0]
    if n_images != len(labels):
        raise DatasetError(f"{root}: {n_images} images but {len(labels)} labels")
    classes = list(classes) if classes else [str(v) for v in sorted(np.unique(labels))]
    split = keys["images"].removesuffix("_images")
    issues, candidates = [], []
    width = len(str(len(labels) - 1))
    for row, label in enumerate(labels):
        path = f"{root}{NPZ_MEMBER}{keys['images']}/{row}"
        if not 0 <= int(label) < len(classes):
            issues.append((path, "unexpected_class", f"label {int(label)} outside 0..{len(classes) - 1}"))
            continue
        candidates.append(Candidate(sample_id=f"{split}/{row:0{width}d}", path=path, class_name=classes[int(label)]))
    return Listing(root=root, class_names=classes, candidates=candidates, issues=issues)
