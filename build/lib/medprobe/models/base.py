"""What every loader returns: an Encoder, i.e. `transform(PIL RGB image) -> tensor` and `encode(batch) -> (B, D)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from PIL import Image


@dataclass
class Encoder:
    model_id: str
    transform: Callable[[Image.Image], torch.Tensor]
    forward: Callable[[torch.Tensor], torch.Tensor]
    dim: int
    feature_point: str
    preprocessing: dict[str, Any]
    weights: dict[str, Any]
    module: torch.nn.Module | None = None
    channels_last: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def neural(self) -> bool:
        return self.module is not None

    def to(self, device: torch.device) -> "Encoder":
        if self.module is not None:
            self.module.to(device)
            if self.channels_last:
                self.module.to(memory_format=torch.channels_last)
        return self

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        if self.channels_last and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return self.forward(batch)


def _interp_name(mode: Any) -> str:
    name = getattr(mode, "value", mode)
    return str(name).lower()


def _floats(values: Any) -> list[float]:
    """Plain floats, rounded past float32 noise (timm keeps mean/std as float32 tensors)."""
    return [round(float(v), 8) for v in values]


def describe_transform(transform: Any) -> dict[str, Any]:
    """The resize / crop / interpolation / mean / std of a torchvision-style transform, as plain values.

    Understands torchvision Compose pipelines (Resize, CenterCrop, Normalize, as open_clip and timm build them) and
    torchvision's weight presets (ImageClassification). The result goes into the HDF5 attrs and is checked against
    the registry in the tests.
    """
    from torchvision import transforms as T

    described: dict[str, Any] = {}
    steps = getattr(transform, "transforms", [transform])
    for step in steps:
        own = step.describe() if hasattr(step, "describe") else None  # medprobe's transforms describe themselves
        if isinstance(own, dict):
            described.update(own)
        elif isinstance(step, T.Resize):
            size = step.size if isinstance(step.size, int) else list(step.size)
            described["resize"] = size[0] if isinstance(size, list) and len(size) == 1 else size
            described["interpolation"] = _interp_name(step.interpolation)
        elif isinstance(step, T.CenterCrop):
            size = list(step.size)
            described["size"] = size[0] if len(set(size)) == 1 else size
            described["crop"] = "center"
        elif isinstance(step, T.Normalize):
            described["mean"] = _floats(step.mean)
            described["std"] = _floats(step.std)
        elif hasattr(step, "crop_size") and hasattr(step, "resize_size"):  # torchvision weight preset
            described["resize"] = step.resize_size[0] if len(step.resize_size) == 1 else list(step.resize_size)
            described["size"] = step.crop_size[0]
            described["crop"] = "center"
            described["interpolation"] = _interp_name(step.interpolation)
            described["mean"] = _floats(step.mean)
            described["std"] = _floats(step.std)
    return described
