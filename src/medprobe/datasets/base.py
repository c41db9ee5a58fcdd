"""What an adapter returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Candidate:
    """A file the adapter believes is a sample: path relative to the root, its class name, its group id."""

    relpath: str
    class_name: str
    group: str = ""


@dataclass
class Listing:
    root: Path
    class_names: list[str]                      # label order
    candidates: list[Candidate]
    issues: list[tuple[str, str, str]] = field(default_factory=list)   # (relpath, kind, detail)
