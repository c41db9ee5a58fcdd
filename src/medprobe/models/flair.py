"""FLAIR (jusiro/FLAIR, retinal fundus): torchvision ResNet-50 and a bias-free linear projection 2048 -> 512.

Preprocessing is FLAIR's own: pixels scaled to [0, 1] without mean/std, the long side resized to 512 and zero-padded
right and bottom to 512 x 512. Feature points: projection (FLAIR's vision_model output: L2-normalise, project,
L2-normalise; 512-d, default) and backbone (the raw 2048-d pooled ResNet feature, FLAIR's projection=False).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import load_strict, read_state_dict, seeded, select, weights_record
from medprobe.models.transforms import build_transform


class _Projection(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.projection = nn.Linear(in_dim, out_dim, bias=False)


class FlairVision(nn.Module):
    def __init__(self, proj_dim: int = 512):
        super().__init__()
        import torchvision

        self.model = torchvision.models.resnet50(weights=None)
        self.model.fc = nn.Identity()
        self.projection_head_vision = _Projection(2048, proj_dim)

    def backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = F.normalize(self.model(pixels), dim=-1)
        return F.normalize(self.projection_head_vision.projection(features), dim=-1)


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    with seeded(spec):
        model = FlairVision(int(spec["arch_config"]["proj_dim"]))
    if files:
        load_strict(model, select(read_state_dict(files["checkpoint"]), "vision_model."), f"model '{model_id}'")
    model.eval()
    point = spec["feature_point"]
    if point not in ("projection", "backbone"):
        raise EncoderError(f"model '{model_id}': unknown feature point {point!r} (projection, backbone)")
    transform = build_transform(spec["preprocessing"])
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=model if point == "projection" else model.backbone,
        dim=int(spec["arch_config"]["proj_dim"]) if point == "projection" else 2048,
        feature_point=point,
        preprocessing=describe_transform(transform),
        weights=weights_record(spec, files),
        module=model,
        channels_last=True,
    )
