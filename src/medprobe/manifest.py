"""The manifest: every sample of a dataset, decoded once, hashed, with its label; and the list of what is wrong.

results/manifests/{dataset}.tsv         sample_id, path, label, label_name, group, sha256, width, height, mode
results/manifests/{dataset}.issues.tsv  path, kind, detail   (unreadable, not_an_image, duplicate, excluded, ...)

Exact byte duplicates are listed as issues; `duplicates="keep"` (the paper's n includes them) keeps every copy as a
sample, `"drop"` keeps only the first copy in sample_id order.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
from PIL import Image, UnidentifiedImageError

from medprobe import files
from medprobe.datasets import list_samples
from medprobe.datasets.base import NPZ_MEMBER
from medprobe.errors import DatasetError
from medprobe.imageio import decode, npz_member

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["sample_id", "path", "label", "label_name", "group", "sha256", "width", "height", "mode"]
ISSUE_COLUMNS = ["path", "kind", "detail"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".dcm"}
MANIFEST_DTYPES = {"sample_id": str, "path": str, "label": "int64", "label_name": str, "group": str,
                   "sha256": str, "width": "int64", "height": "int64", "mode": str}


@dataclass
class FileFacts:
    sha256: str
    width: int
    height: int
    mode: str


@dataclass
class Manifest:
    samples: pd.DataFrame
    issues: pd.DataFrame
    class_names: list[str]

    def counts(self) -> dict[str, int]:
        found = self.samples["label_name"].value_counts()
        return {name: int(found.get(name, 0)) for name in self.class_names}


def inspect_file(path: str | Path) -> FileFacts:
    """Hash the bytes and decode the whole image once; raises on anything Pillow cannot fully decode.
    An image inside a NumPy archive is hashed over its array bytes (shape and dtype included)."""
    if NPZ_MEMBER in str(path):
        array = npz_member(str(path))
        image = Image.fromarray(array)
        digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode() + array.tobytes()).hexdigest()
        return FileFacts(digest, image.width, image.height, image.mode)
    data = Path(path).read_bytes()
    image = decode(data)
    return FileFacts(hashlib.sha256(data).hexdigest(), image.width, image.height, image.mode)


def _inspect_or_error(path: Path) -> FileFacts | str:
    try:
        return inspect_file(path)
    except UnidentifiedImageError:
        return "UnidentifiedImageError: Pillow cannot identify this file as an image"
    except Exception as err:  # noqa: BLE001 - every failure becomes an issue row naming the error
        return f"{type(err).__name__}: {err}"


def build_manifest(root: str | Path, *, adapter: str = "imagefolder", classes: Sequence[str] | None = None,
                   exclude: Sequence[str] = (), duplicates: str = "keep", threads: int = 1,
                   dataset_id: str = "", spec: Mapping | None = None) -> Manifest:
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset '{dataset_id}': {root} does not exist")
    listing = list_samples(adapter, root, classes=classes, exclude=exclude, dataset_id=dataset_id, spec=spec)
    paths = [c.path for c in listing.candidates]
    log.info("dataset '%s': decoding %d images under %s with %d thread(s)", dataset_id, len(paths), root, threads)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        facts = list(pool.map(_inspect_or_error, paths, chunksize=16))

    issues = [dict(path=path, kind=kind, detail=detail) for path, kind, detail in listing.issues]
    rows = []
    label_of = {name: i for i, name in enumerate(listing.class_names)}
    for cand, fact in zip(listing.candidates, facts):
        if isinstance(fact, str):
            suffix = Path(cand.path.split(NPZ_MEMBER)[0]).suffix.lower()
            kind = "unreadable" if suffix in IMAGE_SUFFIXES or NPZ_MEMBER in cand.path else "not_an_image"
            issues.append(dict(path=cand.path, kind=kind, detail=fact))
            continue
        rows.append(dict(sample_id=cand.sample_id, path=cand.path, label=label_of[cand.class_name],
                         label_name=cand.class_name, group=cand.group, sha256=fact.sha256,
                         width=fact.width, height=fact.height, mode=fact.mode))
    samples = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values("sample_id", kind="stable")
    samples = samples.reset_index(drop=True)

    first_copy: dict[str, tuple[str, str]] = {}
    drop = []
    for i, row in samples.iterrows():
        seen = first_copy.get(row.sha256)
        if seen is None:
            first_copy[row.sha256] = (row.sample_id, row.label_name)
            continue
        conflict = seen[1] != row.label_name
        issues.append(dict(
            path=row.path, kind="duplicate_conflicting_label" if conflict else "duplicate",
            detail=f"same bytes as {seen[0]}" + (f" (class {seen[1]} vs {row.label_name})" if conflict else "")
                   + ("; dropped" if duplicates == "drop" else "; kept as a sample")))
        if duplicates == "drop":
            drop.append(i)
    samples = samples.drop(index=drop).reset_index(drop=True)
    issue_frame = pd.DataFrame(issues, columns=ISSUE_COLUMNS)
    return Manifest(samples=samples, issues=issue_frame, class_names=listing.class_names)


def count_mismatches(manifest: Manifest, expected: Mapping | None) -> list[str]:
    """Each way the found counts differ from the registry's expected n and per-class counts."""
    if not expected:
        return []
    problems = []
    n_found = len(manifest.samples)
    if "n" in expected and expected["n"] != n_found:
        problems.append(f"expected {expected['n']} images, found {n_found}")
    if "n_classes" in expected and expected["n_classes"] != len(manifest.class_names):
        problems.append(f"expected {expected['n_classes']} classes, found {len(manifest.class_names)}")
    found = manifest.counts()
    for name, n_expected in (expected.get("counts") or {}).items():
        if found.get(name, 0) != n_expected:
            problems.append(f"class '{name}': expected {n_expected}, found {found.get(name, 0)}")
    return problems


def write_manifest(manifest: Manifest, out_samples: str | Path, out_issues: str | Path) -> None:
    files.write_tsv(out_samples, manifest.samples)
    files.write_tsv(out_issues, manifest.issues)


def read_manifest(path: str | Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=MANIFEST_DTYPES, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: not a medprobe manifest (missing column(s) {', '.join(missing)}); rebuild it")
    return frame


def class_names_of(manifest: pd.DataFrame, registry_classes: Sequence[str] | None = None) -> list[str]:
    """Class names in label order: the registry's list when given, else recovered from the manifest."""
    if registry_classes:
        return list(registry_classes)
    pairs = manifest[["label", "label_name"]].drop_duplicates().sort_values("label")
    return pairs["label_name"].tolist()


def make_dataset_manifest(dataset_id: str, spec: Mapping, root: str | Path, out_samples: str | Path,
                          out_issues: str | Path, *, count_mismatch: str = "error", duplicates: str = "keep",
                          threads: int = 1, obtain: str | None = None) -> Manifest:
    """Build, check and write one dataset's manifest and issues file (the `manifest` rule)."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(
            f"dataset '{dataset_id}': {root} does not exist. To obtain it: "
            f"{obtain or spec.get('obtain', 'see its registry entry')}. Or point config dataset_roots."
            f"{dataset_id} at the folder where you keep it."
        )
    manifest = build_manifest(root, adapter=spec["adapter"], classes=spec.get("classes"),
                              exclude=spec.get("exclude", ()), duplicates=duplicates, threads=threads,
                              dataset_id=dataset_id, spec=spec)
    log.info("dataset '%s': %d samples; per class: %s", dataset_id, len(manifest.samples),
             ", ".join(f"{k} {v}" for k, v in manifest.counts().items()))
    if len(manifest.issues):
        log.warning("dataset '%s': %d issue(s), written to %s:", dataset_id, len(manifest.issues), out_issues)
        for kind, n in manifest.issues["kind"].value_counts().sort_index().items():
            log.warning("  %s: %d", kind, n)
        for row in manifest.issues.itertuples():
            log.warning("  %s\t%s\t%s", row.kind, row.path, row.detail)
    problems = count_mismatches(manifest, spec.get("expected"))
    if problems:
        message = (f"dataset '{dataset_id}' under {root}: " + "; ".join(problems)
                   + f". Issues found while reading: {len(manifest.issues)} (listed in the log)."
                   + " If this is a different release on purpose, set manifest.count_mismatch: warn.")
        if count_mismatch == "error":
            raise DatasetError(message)
        log.warning(message)
    write_manifest(manifest, out_samples, out_issues)
    return manifest
