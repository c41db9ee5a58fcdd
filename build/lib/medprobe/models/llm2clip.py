"""LLM2CLIP (microsoft/LLM2CLIP-Openai-L-14-336): an OpenAI CLIP ViT-L/14-336 vision tower fine-tuned with an LLM
text encoder and a new 1280-d visual projection. The checkpoint's remote code is a copy of transformers' CLIP, so the
image side is rebuilt with transformers' CLIPVisionModelWithProjection and loaded strictly from the `vision_model.*`
and `visual_projection.*` tensors (the text adapter is not read). Feature: `get_image_features` = visual_projection
of the post-layernorm CLS token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import load_strict, read_state_dict, select, weights_record
from medprobe.models.llava_family import clip_vision_tower
from medprobe.models.transforms import build_transform


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    tower_files = None
    if files:
        config = json.loads(Path(files["config"]).read_text())
        projection_dim = config.get("projection_dim", config.get("vision_config", {}).get("projection_dim"))
        if projection_dim != spec["arch_config"]["tower"]["projection_dim"]:
            raise EncoderError(f"model '{model_id}': {files['config']} has projection_dim {projection_dim}, "
                               f"config/models.yaml has {spec['arch_config']['tower']['projection_dim']}")
        tower_files = {"tower_config": files["config"]}
    model = clip_vision_tower(model_id, spec, tower_files, with_projection=True)
    if files:
        state = read_state_dict(files["checkpoint"])
        image_side = {f"vision_model.{k}": v for k, v in select(state, "vision_model.").items()}
        image_side.update({f"visual_projection.{k}": v for k, v in select(state, "visual_projection.").items()})
        load_strict(model, image_side, f"model '{model_id}'")
    transform = build_transform(spec["preprocessing"])
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=lambda pixels: model(pixel_values=pixels).image_embeds,
        dim=int(model.config.projection_dim),
        feature_point=spec["feature_point"],
        preprocessing=describe_transform(transform),
        weights=weights_record(spec, files),
        module=model,
    )
