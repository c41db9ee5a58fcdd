"""Generic image folder: one sub-folder per class, images anywhere below it (BrainMR, SARS-CoV-2 CT, BUSI, and a
user's own data).

Class order is the registry's `classes` when given, else the sorted names of the non-empty class folders. Files
directly under the root, folders that are not a registered class, empty class folders, and files matching an
`exclude` pattern are listed as issues, never silently dropped; medprobe.manifest stops on the ones that would change
the classes (a registered class without images, a folder with images that is not registered and not listed under
`ignore_classes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from medprobe.datasets.base import Candidate, Listing, matches_any


def _files_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def list_samples(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 spec: Mapping | None = None) -> Listing:
    root = Path(root)
    issues: list[tuple[str, str, str]] = []
    folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    for stray in sorted(p for p in root.iterdir() if p.is_file()):
        issues.append((str(stray), "outside_class_folder", "file directly under the dataset root; not a sample"))

    ignored = set((spec or {}).get("ignore_classes") or ())
    for name in sorted(ignored & set(folders)):
        issues.append((str(root / name), "ignored_class", "folder listed under ignore_classes; left out"))
    folders = {name: folder for name, folder in folders.items() if name not in ignored}
    per_class: dict[str, list[Path]] = {name: _files_below(folder) for name, folder in folders.items()}
    if classes is None:
        for name, files in per_class.items():
            if not files:
                issues.append((str(root / name), "empty_class", "class folder holds no files; class left out"))
        class_names = [name for name, files in per_class.items() if files]
    else:
        class_names = list(classes)
        for name, files in per_class.items():
            if name not in class_names:
                if files:
                    issues.append((str(root / name), "unexpected_class",
                                   f"folder is not one of the registry's classes {class_names}; it holds "
                                   f"{len(files)} file(s)"))
                else:
                    issues.append((str(root / name), "empty_folder", "empty folder, not a registered class"))
        for name in class_names:
            if name in per_class and not per_class[name]:
                issues.append((str(root / name), "empty_class", "class folder holds no files"))
            elif name not in per_class:
                issues.append((str(root / name), "missing_class", "registered class has no folder under the root"))

    candidates = []
    for name in class_names:
        for path in per_class.get(name, []):
            relpath = path.relative_to(root).as_posix()
            pattern = matches_any(relpath, exclude)
            if pattern is not None:
                issues.append((str(path), "excluded", f"matches the registry's exclude pattern {pattern!r}"))
                continue
            candidates.append(Candidate(sample_id=relpath, path=str(path), class_name=name))
    return Listing(root=root, class_names=class_names, candidates=candidates, issues=issues)
