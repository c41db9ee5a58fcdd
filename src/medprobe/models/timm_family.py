"""timm models: `timm.create_model(arch, num_classes=0)` returns the pooled pre-logits feature."""

from __future__ import annotations

from typing import Mapping

import torch

from medprobe.models.base import Encoder, describe_transform
from medprobe.models.weights import seeded, weights_record


def build(model_id: str, spec: Mapping) -> Encoder:
    import timm
    from timm.data import create_transform, resolve_data_config

    source = spec["weights"]["source"]
    with seeded(spec):
        model = timm.create_model(spec["arch"], pretrained=(source == "timm"), num_classes=0)
    model.eval()
    config = resolve_data_config({}, model=model)
    transform = create_transform(**config)
    preprocessing = describe_transform(transform)
    preprocessing["crop_pct"] = float(config["crop_pct"])
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=model,
        dim=int(model.num_features),
        feature_point=spec["feature_point"],
        preprocessing=preprocessing,
        weights=weights_record(spec),
        module=model,
        channels_last=not hasattr(model, "patch_embed"),
    )
