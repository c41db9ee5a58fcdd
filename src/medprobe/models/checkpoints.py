"""Shared by the loaders: seeded random initialisation, checkpoint reading, strict loading of a sub-module."""

from __future__ import annotations

import contextlib
import pickle
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


SAFETENSORS, TORCH_ZIP, TORCH_LEGACY = "safetensors", "torch zip", "torch legacy"


def checkpoint_format(path: Path) -> str:
    """What a weight file is, read from its first bytes: a Hugging Face cache names its files by hash (blobs/<sha256>),
    so the suffix of the path that was opened says nothing."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(b"PK\x03\x04"):
        return TORCH_ZIP  # torch.save since torch 1.6
    if len(head) >= 9 and head[8:9] == b"{":
        header = int.from_bytes(head[:8], "little")
        if 0 < header < Path(path).stat().st_size:
            return SAFETENSORS  # 8-byte little-endian header length, then the JSON header
    if head[:1] == b"\x80":
        return TORCH_LEGACY  # a pickle stream: torch.save before 1.6 (or _use_new_zipfile_serialization=False)
    raise EncoderError(f"{path}: not a checkpoint medprobe can read (neither safetensors nor a torch.save file; "
                       f"first bytes {head[:8]!r}); download it again, or point local_weights at the right file")


def read_state_dict(path: Path, *, foreign_objects: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors or torch.save checkpoint (zip or legacy format, whatever the file is called); a
    {'model'|'state_dict'|'model_state_dict': ...} wrapper is opened.

    Nothing in the file runs: torch's weights-only unpickler reads it. `foreign_objects=True` lets a checkpoint also
    hold objects of libraries that are not installed (CXR-CLIP pickles its omegaconf training config beside the
    weights): each is read into an inert placeholder, never imported or called.
    """
    path = Path(path)
    kind = checkpoint_format(path)
    if kind == SAFETENSORS:
        from safetensors.torch import load_file

        return load_file(str(path))
    load = dict(map_location="cpu", weights_only=True, mmap=kind == TORCH_ZIP)  # legacy files cannot be mapped
    try:
        state = torch.load(path, **load)
    except pickle.UnpicklingError as err:
        if not foreign_objects:
            names = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path)[:5])
            raise EncoderError(f"{path}: holds Python objects besides tensors ({names}), which medprobe does not "
                               f"unpickle; is this the model's own checkpoint?") from err
        with torch.serialization.safe_globals(_placeholders(path)):
            state = torch.load(path, **load)
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping):
        raise EncoderError(f"{path}: not a checkpoint of tensors (found {type(state).__name__})")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


class _Placeholder:
    """Stands in for a pickled object of a foreign library: takes any arguments and state, does nothing."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def _placeholders(path: Path) -> list:
    """(placeholder class, 'module.Name') for every global the checkpoint names that torch does not allow."""
    names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    return [(type(name.rsplit(".", 1)[-1], (_Placeholder,), {}), name) for name in names]


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


def read_state_dict_entry(path: Path, entry: str | None, *, foreign_objects: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of `checkpoint[entry]` (a release that keeps several state dicts side by side, e.g. KAD's
    {"model", "image_encoder", "text_encoder", ...}); `entry=None`: the file is the state dict itself. Unlike
    read_state_dict, no wrapper is guessed: a missing entry is an error naming the file and the keys it has."""
    path = Path(path)
    if checkpoint_format(path) == SAFETENSORS:
        if entry is not None:
            raise EncoderError(f"{path}: a safetensors file has no entry {entry!r}; is this the right checkpoint?")
        return read_state_dict(path)
    load = dict(map_location="cpu", weights_only=True, mmap=checkpoint_format(path) == TORCH_ZIP)
    try:
        state = torch.load(path, **load)
    except pickle.UnpicklingError as err:
        if not foreign_objects:
            names = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path)[:5])
            raise EncoderError(f"{path}: holds Python objects besides tensors ({names}), which medprobe does not "
                               f"unpickle; is this the model's own checkpoint?") from err
        with torch.serialization.safe_globals(_placeholders(path)):
            state = torch.load(path, **load)
    if entry is not None:
        if not isinstance(state, Mapping) or not isinstance(state.get(entry), Mapping):
            keys = sorted(state)[:10] if isinstance(state, Mapping) else type(state).__name__
            raise EncoderError(f"{path}: expected the state dict under {entry!r}; the file has {keys}. Is this the "
                               f"release the registry names?")
        state = state[entry]
    if not isinstance(state, Mapping):
        raise EncoderError(f"{path}: not a checkpoint of tensors (found {type(state).__name__})")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
