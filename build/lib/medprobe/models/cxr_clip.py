"""CXR-CLIP (kakaobrain/cxr-clip@955ab931649cf4277dbeb96037d6e4e43e74d3cb, Swin-T checkpoints): transformers' SwinModel
(microsoft/swin-tiny-patch4-window7-224 architecture) and the checkpoint's linear image projection (768 -> 512).

As in the release's `CXRClip.encode_image` (cxrclip/model/clip.py L46-54), the Swin feature is the first token of
`last_hidden_state` (Swin has no CLS token; that is what the release uses), then `image_projection`; the release's
evaluator L2-normalises after that (cxrclip/evaluator.py L129-134), medprobe keeps the unnormalised projection, as it
does for every CLIP model. The checkpoint (.tar: model, optimizer, scheduler, config, epoch, train_loss; trainer.py
L161-170) was written with transformers 4.26.1, whose Swin parameter names transformers 5 renamed; the installed
transformers' own conversion mapping renames them on load. Its config pickles omegaconf objects, which are read as
inert placeholders, never imported.
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
    def __init__(self, swin: Mapping, proj_dim: int, swin_state: Mapping[str, torch.Tensor] | None = None,
                 what: str = "CXR-CLIP"):
        super().__init__()
        from transformers import SwinConfig, SwinModel

        if swin_state is None:
            self.image_encoder = SwinModel(SwinConfig(**swin))
        else:
            # the release was written by transformers 4.26 (attention.self.query, intermediate.dense, ...); the
            # installed transformers renames such keys itself when it loads them (its checkpoint conversion mapping)
            self.image_encoder, info = SwinModel.from_pretrained(None, config=SwinConfig(**swin),
                                                                 state_dict=dict(swin_state),
                                                                 output_loading_info=True)
            problems = {k: sorted(v)[:5] for k, v in info.items() if v and k != "error_msgs"}
            if problems or info.get("error_msgs"):
                raise EncoderError(f"{what} Swin: checkpoint does not match the architecture: {problems} "
                                   f"{info.get('error_msgs', '')}")
        self.image_projection = nn.Linear(self.image_encoder.config.hidden_size, proj_dim)

    def backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(pixel_values=pixels).last_hidden_state[:, 0]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_projection(self.backbone(pixels))


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    arch = spec["arch_config"]
    state = None
    if files:
        # the release's .tar also pickles its training config (omegaconf objects): read as inert placeholders
        state = read_state_dict(files["checkpoint"], foreign_objects=True)
    with seeded(spec):
        model = CxrClipImageEncoder(arch["swin"], arch["proj_dim"],
                                    select(state, "image_encoder.image_encoder.") if state else None,
                                    f"model '{model_id}'")
    if state:
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
