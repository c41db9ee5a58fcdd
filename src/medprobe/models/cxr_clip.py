"""CXR-CLIP (kakaobrain/cxr-clip, Swin-T checkpoints): transformers' SwinModel (microsoft/swin-tiny-patch4-window7-224
architecture) and the checkpoint's linear image projection (768 -> 512).

As in the release's `CXRClip.encode_image`, the Swin feature is the first token of `last_hidden_state` (Swin has no
CLS token; that is what the release uses), then `image_projection`; no L2 normalisation.
Feature points: image_embeds (after the projection, 512-d, default) and backbone (the 768-d token before it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import load_strict, read_state_dict, seeded, select, weights_record
from medprobe.models.transforms import build_transform


class CxrClipImageEncoder(nn.Module):
    def __init__(self, swin: Mapping, proj_dim: int):
        super().__init__()
        from transformers import SwinConfig, SwinModel

        self.image_encoder = SwinModel(SwinConfig(**swin))
        self.image_projection = nn.Linear(self.image_encoder.config.hidden_size, proj_dim)

    def backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(pixel_values=pixels).last_hidden_state[:, 0]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_projection(self.backbone(pixels))


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    arch = spec["arch_config"]
    with seeded(spec):
        model = CxrClipImageEncoder(arch["swin"], arch["proj_dim"])
    if files:
        # the release's .tar also pickles its training config: readable only with pickle, after fetch_weights
        # has recorded the file's sha256
        state = read_state_dict(files["checkpoint"], foreign_objects=True)
        load_strict(model.image_encoder, select(state, "image_encoder.image_encoder."), f"model '{model_id}' Swin")
        load_strict(model.image_projection, select(state, "image_projection.projection."),
                    f"model '{model_id}' projection")
    model.eval()
    point = spec["feature_point"]
    if point not in ("image_embeds", "backbone"):
        raise EncoderError(f"model '{model_id}': unknown feature point {point!r} (image_embeds, backbone)")
    transform = build_transform(spec["preprocessing"])
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=model if point == "image_embeds" else model.backbone,
        dim=int(arch["proj_dim"] if point == "image_embeds" else model.image_encoder.config.hidden_size),
        feature_point=point,
        preprocessing=describe_transform(transform),
        weights=weights_record(spec, files),
        module=model,
    )
