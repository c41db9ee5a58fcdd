"""Weight provenance shared by the loaders."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch


@contextlib.contextmanager
def seeded(spec: Mapping) -> Iterator[None]:
    """Random-weight models are initialised under the registry's seed, so every run builds the same network."""
    weights = spec["weights"]
    if weights["source"] != "random":
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(weights["seed"]))
        yield


def weights_record(spec: Mapping) -> dict[str, Any]:
    """What the HDF5 attrs say about the weights."""
    return {k: v for k, v in spec["weights"].items() if k != "note"}
