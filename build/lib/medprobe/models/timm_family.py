"""timm models (ResNet-50, UNI's ViT-L/16): `timm.create_model(arch, num_classes=0, **arch_kwargs)` gives the pooled
pre-logits feature (UNI: the CLS token after the final norm).

Preprocessing comes from timm's data config of the architecture unless the registry sets `transform: registry`
(UNI: the model card's Resize(224) + CenterCrop(224) + ImageNet normalisation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from medprobe.models.base import Encoder, describe_transform
from medprobe.models.transforms import build_transform
from medprobe.models.checkpoints import load_strict, read_state_dict, seeded, weights_record


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    import timm
    from timm.data import create_transform, resolve_data_config

    with seeded(spec):
        model = timm.create_model(spec["arch"], pretrained=False, num_classes=0, **spec.get("arch_kwargs", {}))
    if files:
        load_strict(model, read_state_dict(files["checkpoint"]), f"model '{model_id}'")
    model.eval()
    if spec.get("transform") == "registry":
        transform = build_transform(spec["preprocessing"])
        preprocessing = describe_transform(transform)
    else:
        config = resolve_data_config({}, model=model)
        transform = create_transform(**config)
        preprocessing = {**describe_transform(transform), "crop_pct": float(config["crop_pct"])}
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=model,
        dim=int(model.num_features),
        feature_point=spec["feature_point"],
        preprocessing=preprocessing,
        weights=weights_record(spec, files),
        module=model,
        channels_last=not hasattr(model, "patch_embed"),
    )
