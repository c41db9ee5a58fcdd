"""What an adapter returns: the candidate samples of a release, and what it found wrong on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# a path of the form "<file.npz>::<array key>/<row>" names one image inside a NumPy archive
NPZ_MEMBER = "::"


@dataclass(frozen=True)
class Candidate:
    """A sample the adapter believes in: a stable id, where its pixels are, its class name, its group id."""

    sample_id: str
    path: str
    class_name: str
    group: str = ""


@dataclass
class Listing:
    root: Path
    class_names: list[str]                      # label order
    candidates: list[Candidate]
    issues: list[tuple[str, str, str]] = field(default_factory=list)   # (path, kind, detail)


def matches_any(relpath: str, patterns) -> str | None:
    """The first glob pattern that matches the file name or the relative path."""
    import fnmatch

    name = relpath.rsplit("/", 1)[-1]
    return next((p for p in patterns if fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relpath, p)), None)


def outside_root(root: Path, path: str | Path) -> bool:
    """True when `path` (root joined with a listed path) leaves the root lexically: `..` segments or an absolute path.
    Decided without touching the disk, so nothing outside the root is even looked at."""
    import os

    root_lexical = os.path.abspath(root)
    return os.path.commonpath([os.path.abspath(path), root_lexical]) != root_lexical
