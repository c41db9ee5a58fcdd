"""Shared by the loaders: seeded random initialisation, checkpoint reading, strict loading of a sub-module."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from medprobe.errors import EncoderError


@contextlib.contextmanager
def seeded(spec: Mapping) -> Iterator[None]:
    """Architectures are built under the registry's seed (0 by default), so random weights are reproducible."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec["weights"].get("seed", 0)))
        yield


def weights_record(spec: Mapping, files: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """What the HDF5 attrs say about the weights (the fetch record adds the hashes)."""
    record = {k: v for k, v in spec["weights"].items() if k != "note"}
    if files:
        record["files"] = {role: str(path) for role, path in sorted(files.items())}
    return record


def read_state_dict(path: Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors, .bin/.pth/.pt or .tar checkpoint; a {'model'|'state_dict': ...} wrapper is opened."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=not allow_pickle, mmap=True)
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping):
        raise EncoderError(f"{path}: not a checkpoint of tensors (found {type(state).__name__})")
    return dict(state)


def select(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with the prefix removed (a leading 'module.' of DDP checkpoints is ignored)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
    return out


def text_tower_config(model_id: str, spec: Mapping, files: Mapping[str, Path] | None, roles: tuple[str, ...],
                      what: str) -> Mapping[str, Any]:
    """The registry's text_config, once the fetch record lists every file (`roles`) the text tower is built from;
    otherwise an error that names `what` is missing and how to fetch it."""
    cfg = spec.get("text_config")
    if not cfg:
        raise EncoderError(f"model '{model_id}': the registry has no text_config for its text tower")
    if not files or any(role not in files for role in roles):
        raise EncoderError(f"model '{model_id}': zero-shot needs {what}, which results/weights/{model_id}.json does "
                           f"not list (made by an older medprobe, or with local_weights while it was not cached); "
                           f"fetch it: snakemake results/weights/{model_id}.json --forcerun fetch_weights --cores 1")
    return cfg


# buffers that are recomputed at construction; library versions differ on whether checkpoints store them
DERIVED_BUFFERS = ("num_batches_tracked", "position_ids", "relative_position_index")


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Every parameter and buffer of `module` must come from `state`, with its shape; surplus keys are errors too."""
    result = module.load_state_dict(dict(state), strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(DERIVED_BUFFERS)]
    unexpected = [k for k in result.unexpected_keys if not k.endswith(DERIVED_BUFFERS)]
    if missing or unexpected:
        raise EncoderError(f"{what}: checkpoint does not match the architecture: "
                           f"{len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}")
