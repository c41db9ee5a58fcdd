"""Dataset adapters: each turns a release's layout into a list of candidate samples (pixels, class, group).

An adapter lists; it never decodes. medprobe.manifest decodes, hashes and checks what the adapter lists. The facts
about each release (source, licence, expected counts, how to obtain it) live in config/datasets.yaml.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping, Sequence

from medprobe.datasets.base import Listing
from medprobe.errors import DatasetError

ADAPTERS: dict[str, str] = {
    "imagefolder": "medprobe.datasets.imagefolder",
    "csv": "medprobe.datasets.csv_table",
    "npz": "medprobe.datasets.npz",
    "breakhis": "medprobe.datasets.breakhis",
    "deepdrid": "medprobe.datasets.deepdrid",
    "isic2019": "medprobe.datasets.isic2019",
    "hicervix": "medprobe.datasets.hicervix",
    # the DLILP study's chest X-ray releases: one module, which picks the release by the entry's adapter
    "chexpert_5x200": "medprobe.datasets.cxr",
    "mimic_5x200": "medprobe.datasets.cxr",
    "siim_pneumothorax": "medprobe.datasets.cxr",
    "rsna_pneumonia": "medprobe.datasets.cxr",
    "nih_lt": "medprobe.datasets.cxr",
    "vindr_pcxr": "medprobe.datasets.cxr",
    "covid_radiography": "medprobe.datasets.cxr",
}


def list_samples(adapter: str, root: Path, classes: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), dataset_id: str = "", spec: Mapping | None = None) -> Listing:
    """The candidate samples of a release, by its registry adapter."""
    if adapter not in ADAPTERS:
        raise DatasetError(f"dataset '{dataset_id}': unknown adapter '{adapter}' "
                           f"(available: {', '.join(sorted(ADAPTERS))})")
    module = importlib.import_module(ADAPTERS[adapter])
    return module.list_samples(Path(root), classes=classes, exclude=exclude, spec={**(spec or {}), "adapter": adapter})


__all__ = ["ADAPTERS", "Listing", "list_samples"]
