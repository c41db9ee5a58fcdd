"""The manifest: every sample of a dataset, decoded once, hashed, with its label; and the list of what is wrong.

results/manifests/{dataset}.tsv         sample_id, path, label, label_name, group, sha256, width, height, mode
results/manifests/{dataset}.issues.tsv  path, kind, detail   (unreadable, not_an_image, duplicate, excluded, ...)

Exact byte duplicates are listed as issues; `duplicates="keep"` (the paper's n includes them) keeps every copy as a
sample, `"drop"` keeps only the first copy in sample_id order.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
from PIL import Image, UnidentifiedImageError

from medprobe import files
from medprobe.datasets import list_samples
from medprobe.datasets.base import NPZ_MEMBER, outside_root
from medprobe.errors import DatasetError
from medprobe.imageio import decode, read_source

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["sample_id", "path", "label", "label_name", "group", "sha256", "width", "height", "mode"]
ISSUE_COLUMNS = ["path", "kind", "detail"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".dcm", ".dicom"}
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


def input_fingerprint(root: str | Path) -> str:
    """What the manifest rule reruns on: every file under the dataset root (its relative path, size and mtime; a
    symlink's target's), or the root file itself. Any image or label file added, removed, replaced or touched changes
    it; stat only, so it costs milliseconds per thousand files. Embed then checks each image's sha256 as it reads it."""
    root = Path(root)
    digest = hashlib.sha256()
    if not root.exists():
        return "absent"
    if root.is_file():
        paths = [root]
    else:
        paths = []
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            paths.extend(Path(folder) / name for name in sorted(names))
    for path in paths:
        try:
            stat = path.stat()
            facts = f"{stat.st_size} {stat.st_mtime_ns}"
        except OSError:
            facts = "unreadable"
        digest.update(f"{path.relative_to(root).as_posix() if path != root else path.name}\0{facts}\n".encode(
            "utf-8", "surrogateescape"))
    return f"{len(paths)} files, sha256 {digest.hexdigest()}"


def inspect_file(path: str | Path) -> FileFacts:
    """Hash the bytes and decode the whole image once; raises on anything Pillow (or pydicom) cannot fully decode.
    An image inside a NumPy archive is hashed over its array bytes (shape and dtype included)."""
    digest, content = read_source(path)
    image = Image.fromarray(content) if NPZ_MEMBER in str(path) else decode(content)
    if image.format == "DICOM":  # mode column: "DICOM MONOCHROME2", the format and how its gray runs
        return FileFacts(digest, image.width, image.height, f"DICOM {image.info['photometric']}")
    return FileFacts(digest, image.width, image.height, image.mode)


def _inspect_or_error(path: Path) -> FileFacts | str:
    try:
        return inspect_file(path)
    except UnidentifiedImageError:
        return "UnidentifiedImageError: Pillow cannot identify this file as an image"
    except Exception as err:  # noqa: BLE001 - every failure becomes an issue row naming the error
        return f"{type(err).__name__}: {err}"


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def escaped(text: str) -> str:
    """A path with its control characters written as \\xNN, safe in a TSV cell and a log line."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def screen_paths(listing, root: Path, *, allow_symlinks: bool, dataset_id: str) -> list[dict]:
    """Every candidate must lie under the root: `..`, absolute paths and (unless allow_symlinks) symbolic links stop
    the manifest; names with control characters are refused and listed. Returns the issue rows; narrows
    listing.candidates to the accepted ones."""
    if root.is_file():  # a NumPy archive: its members are not files
        return []
    root_lexical = os.path.abspath(root)
    root_real = os.path.realpath(root)
    outside = [path for path, kind, _ in listing.issues if kind == "outside_root"]
    linked, issues, kept = [], [], []
    for cand in listing.candidates:
        lexical = os.path.abspath(cand.path)  # the adapter joined root and the listed path; normalised here
        if outside_root(root, lexical):
            outside.append(cand.path)
            continue
        relative = os.path.relpath(lexical, root_lexical)
        if CONTROL_CHARACTERS.search(relative):
            issues.append(dict(path=escaped(cand.path), kind="unsafe_file_name",
                               detail="control character (tab, newline, ...) in the name; refused: rename the file"))
            continue
        real = os.path.realpath(lexical)
        if real != os.path.join(root_real, relative):
            if not allow_symlinks:
                linked.append(f"{cand.path} -> {real}")
                continue
            issues.append(dict(path=cand.path, kind="symlink", detail=f"reached through a symbolic link: {real} "
                                                                      f"(allow_symlinks: true)"))
        kept.append(cand)
    where = f"dataset '{dataset_id}' under {root}"
    if outside:
        raise DatasetError(f"{where}: {len(outside)} sample path(s) lie outside the dataset root: "
                           f"{', '.join(escaped(p) for p in outside[:5])}. medprobe reads nothing outside the root; "
                           f"fix the label file's paths or the entry's path_template so that they stay below it.")
    if linked:
        raise DatasetError(f"{where}: {len(linked)} sample(s) are reached through symbolic links: "
                           f"{', '.join(escaped(p) for p in linked[:5])}. A link can put another class's image under "
                           f"this class or read outside the root. Replace the links by the files, or set "
                           f"allow_symlinks: true in the dataset's entry (each link is then listed in the issues file).")
    listing.candidates = kept
    return issues


def class_problems(manifest: "Manifest", listing_issues: Sequence[tuple[str, str, str]], *, dataset_id: str,
                   root: Path) -> str | None:
    """What is wrong with the classes, as one message naming them and the fix; None when nothing is."""
    problems = []
    counts = manifest.counts()
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        problems.append(f"class(es) without a single readable image: {', '.join(empty)} (an empty or missing folder, "
                        f"or no label rows, or every file unreadable). Put the images in place, or remove the "
                        f"class(es) from `classes:` in the dataset's entry")
    unexpected = [(path, detail) for path, kind, detail in listing_issues if kind == "unexpected_class"]
    if unexpected:
        shown = "; ".join(f"{escaped(path)} ({detail})" for path, detail in unexpected[:5])
        more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
        problems.append(f"image(s) of classes that are not one of `classes:` {manifest.class_names}: {shown}{more}. "
                        f"Add the class to `classes:`, or list it under `ignore_classes:` to leave it out on purpose")
    present = [name for name, n in counts.items() if n > 0]
    if len(present) < 2:
        problems.append(f"{len(present)} class(es) with images ({', '.join(present) or 'none'}): the probes need at "
                        f"least two. The root should hold one folder (or label value) per class")
    if not problems:
        return None
    return f"dataset '{dataset_id}' under {root}: " + ". ".join(problems) + "."


def build_manifest(root: str | Path, *, adapter: str = "imagefolder", classes: Sequence[str] | None = None,
                   exclude: Sequence[str] = (), duplicates: str = "keep", threads: int = 1,
                   dataset_id: str = "", spec: Mapping | None = None, check_classes: bool = True) -> Manifest:
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset '{dataset_id}': {root} does not exist")
    listing = list_samples(adapter, root, classes=classes, exclude=exclude, dataset_id=dataset_id, spec=spec)
    screened = screen_paths(listing, root, allow_symlinks=bool((spec or {}).get("allow_symlinks")),
                            dataset_id=dataset_id)
    paths = [c.path for c in listing.candidates]
    log.info("dataset '%s': decoding %d images under %s with %d thread(s)", dataset_id, len(paths), root, threads)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        facts = list(pool.map(_inspect_or_error, paths, chunksize=16))

    issues = [dict(path=escaped(path), kind=kind, detail=detail) for path, kind, detail in listing.issues] + screened
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
    manifest = Manifest(samples=samples, issues=issue_frame, class_names=listing.class_names)
    if check_classes:
        problem = class_problems(manifest, listing.issues, dataset_id=dataset_id, root=root)
        if problem:
            raise DatasetError(problem)
    return manifest


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
