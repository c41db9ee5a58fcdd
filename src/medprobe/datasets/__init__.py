"""Dataset adapters: each turns a release's layout into a list of candidate samples (file, class, group).

An adapter lists files; it never decodes them. medprobe.manifest decodes, hashes and checks what the adapter lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from medprobe.datasets import imagefolder
from medprobe.datasets.base import Listing
from medprobe.errors import DatasetError

ADAPTERS: dict[str, Callable[..., Listing]] = {
    "imagefolder": imagefolder.list_samples,
}


def list_samples(adapter: str, root: Path, classes: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), dataset_id: str = "", spec: Mapping | None = None) -> Listing:
    if adapter not in ADAPTERS:
        raise DatasetError(
            f"dataset '{dataset_id}': adapter '{adapter}' is not available in this version of medprobe "
            f"(available: {', '.join(sorted(ADAPTERS))}). Convert the release to one folder per class and register "
            f"it with adapter: imagefolder under custom_datasets."
        )
    return ADAPTERS[adapter](root, classes=classes, exclude=exclude)


__all__ = ["ADAPTERS", "Listing", "list_samples"]
