"""One split per dataset, shared by every model: a stratified hold-out, then stratified K-fold CV on the rest.

results/splits/{dataset}.tsv: sample_id, label, group, partition (train | holdout), fold (the CV fold in which a
training row is the validation row, 0..K-1; -1 on the hold-out).
With group_aware=True, every group (patient, slide, lesion) stays on one side of the hold-out and of every fold
(scikit-learn's StratifiedGroupKFold); the paper's setting is group_aware=False.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold, train_test_split

from medprobe.errors import DatasetError

log = logging.getLogger(__name__)

SPLIT_COLUMNS = ["sample_id", "label", "group", "partition", "fold"]


def _name(value: int, class_names: Mapping[int, str] | Sequence[str] | None) -> str:
    """A label's class name, for messages (by label number only when the name is unknown)."""
    if isinstance(class_names, Mapping):
        return class_names.get(value, f"label {value}")
    return class_names[value] if class_names and 0 <= value < len(class_names) else f"label {value}"


def _check_class_sizes(labels: np.ndarray, needed: int, what: str, dataset_id: str,
                       class_names: Sequence[str] | None = None) -> None:
    values, counts = np.unique(labels, return_counts=True)
    small = [(int(v), int(c)) for v, c in zip(values, counts) if c < needed]
    if small:
        listing = ", ".join(f"{_name(v, class_names)}: {c}" for v, c in small)
        raise DatasetError(
            f"dataset '{dataset_id}': too few images for {what} (it needs {needed} per class; {listing}). Add images "
            f"to these classes, or leave them out (remove them from `classes:`, or list them under "
            f"`ignore_classes:`)."
        )


def _check_split(labels: np.ndarray, partition: np.ndarray, n_folds: int, dataset_id: str,
                 class_names: Sequence[str] | None, holdout_fraction: float) -> None:
    """Every class in the hold-out, and in every fold's training rows: otherwise a fold model never sees a class and
    macro scores silently average in a zero."""
    problems = []
    for value in np.unique(labels):
        n_total = int((labels == value).sum())
        n_holdout = int(((labels == value) & (partition == "holdout")).sum())
        n_train = n_total - n_holdout
        if n_holdout == 0 or n_train < n_folds:
            problems.append(f"{_name(int(value), class_names)}: {n_total} images, {n_holdout} in the hold-out, "
                            f"{n_train} for {n_folds}-fold CV")
    if problems:
        smallest = min(int((labels == v).sum()) for v in np.unique(labels))
        raise DatasetError(
            f"dataset '{dataset_id}': too few images in some classes for the split (each class needs at least one "
            f"hold-out image and split.n_folds = {n_folds} training images): " + "; ".join(problems) + ". Add images "
            f"to these classes, leave them out (remove them from `classes:` or list them under `ignore_classes:`), "
            f"or lower split.n_folds" + (f" (the smallest class has {smallest})" if smallest > 2 else "")
            + f" or raise split.holdout_fraction (now {holdout_fraction}).")


def make_split(sample_ids: Sequence[str], labels: Sequence[int], groups: Sequence[str] | None = None, *,
               holdout_fraction: float = 0.2, n_folds: int = 5, seed: int = 0, group_aware: bool = False,
               dataset_id: str = "", class_names: Mapping[int, str] | Sequence[str] | None = None) -> pd.DataFrame:
    sample_ids = np.asarray(sample_ids, dtype=object)
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups if groups is not None else [""] * len(labels), dtype=object)
    index = np.arange(len(labels))

    if group_aware:
        if (groups == "").any():
            raise DatasetError(
                f"dataset '{dataset_id}': split.group_aware is true but {int((groups == '').sum())} sample(s) have "
                f"no group id; this dataset's adapter releases no groups. Set split.group_aware: false."
            )
        n_holdout_splits = max(2, int(round(1.0 / holdout_fraction)))
        outer = StratifiedGroupKFold(n_splits=n_holdout_splits, shuffle=True, random_state=seed)
        train_idx, holdout_idx = next(outer.split(index, labels, groups))
    else:
        _check_class_sizes(labels, 2, "a stratified hold-out", dataset_id, class_names)
        train_idx, holdout_idx = train_test_split(index, test_size=holdout_fraction, stratify=labels,
                                                  random_state=seed)
    train_idx = np.sort(train_idx)
    fold = np.full(len(labels), -1, dtype=np.int64)
    in_holdout = np.full(len(labels), "train", dtype=object)
    in_holdout[holdout_idx] = "holdout"
    _check_split(labels, in_holdout, n_folds, dataset_id, class_names, holdout_fraction)
    if group_aware:
        inner = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        folds = inner.split(train_idx, labels[train_idx], groups[train_idx])
    else:
        inner = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        folds = inner.split(train_idx, labels[train_idx])
    for k, (_, val) in enumerate(folds):
        fold[train_idx[val]] = k

    partition = np.full(len(labels), "train", dtype=object)
    partition[holdout_idx] = "holdout"
    return pd.DataFrame({"sample_id": sample_ids, "label": labels, "group": groups,
                         "partition": partition, "fold": fold}, columns=SPLIT_COLUMNS)


def cv_folds(labels: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index folds over samples: stratified by label where every label allows it, else plain K-fold
    (the bias audit's probes on a few hundred hold-out images, where rare values may have fewer members than folds)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    k = max(2, min(n_folds, len(labels)))
    if counts[counts > 0].min() >= k:
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))
    return list(KFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels))))


def straddling_duplicates(manifest: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Exact byte duplicates with one copy in the hold-out and another in training (a leak worth knowing)."""
    joined = manifest[["sample_id", "sha256"]].merge(split[["sample_id", "partition"]], on="sample_id")
    sides = joined.groupby("sha256")["partition"].nunique()
    leaking = sides[sides > 1].index
    return joined[joined["sha256"].isin(leaking)].sort_values(["sha256", "sample_id"]).reset_index(drop=True)


def read_split(path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype={"sample_id": str, "group": str, "partition": str},
                        keep_default_na=False)
    missing = [c for c in SPLIT_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: not a medprobe split (missing column(s) {', '.join(missing)}); rebuild it")
    return frame


def summarize_split(split: pd.DataFrame) -> str:
    holdout = split[split.partition == "holdout"]
    parts = [f"hold-out {len(holdout)}"]
    for k in sorted(split.loc[split.fold >= 0, "fold"].unique()):
        parts.append(f"fold {k}: {(split.fold == k).sum()}")
    return ", ".join(parts)


def split_dataset(manifest_path, out_path, out_issues, *, dataset_id: str, seed: int = 0,
                  holdout_fraction: float = 0.2, n_folds: int = 5, group_aware: bool = False) -> pd.DataFrame:
    """The `split` rule: read the manifest, split it, report exact duplicates with copies on both sides."""
    from medprobe.files import write_tsv
    from medprobe.manifest import read_manifest

    manifest = read_manifest(manifest_path)
    split = make_split(manifest["sample_id"], manifest["label"], manifest["group"],
                       holdout_fraction=holdout_fraction, n_folds=n_folds, seed=seed, group_aware=group_aware,
                       dataset_id=dataset_id,
                       class_names=dict(zip(manifest["label"].astype(int), manifest["label_name"])))
    log.info("dataset '%s' (%d samples, seed %d%s): %s", dataset_id, len(split), seed,
             ", group-aware" if group_aware else "", summarize_split(split))
    leaks = straddling_duplicates(manifest, split)
    if len(leaks):
        log.warning("dataset '%s': %d exact-duplicate group(s) have copies on both sides of the hold-out "
                    "(listed in %s)", dataset_id, leaks["sha256"].nunique(), out_issues)
    issues = pd.DataFrame({"sample_id": leaks["sample_id"], "kind": "duplicate_across_holdout",
                           "detail": [f"{p}; same bytes (sha256 {h[:12]}) on both sides of the hold-out"
                                      for p, h in zip(leaks["partition"], leaks["sha256"])]},
                          columns=["sample_id", "kind", "detail"])
    write_tsv(out_issues, issues)
    write_tsv(out_path, split)
    return split
