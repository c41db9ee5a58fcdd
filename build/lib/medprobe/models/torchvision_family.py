"""torchvision ImageNet classifiers with their weight preset's own transform, cut at the registry's feature point."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import load_strict, read_state_dict, seeded, weights_record


def cut(model: nn.Module, arch: str, feature_point: str, model_id: str) -> nn.Module:
    if arch.startswith("resnet") and feature_point == "pooled":
        model.fc = nn.Identity()
    elif arch.startswith("vgg") and feature_point == "fc7":
        model.classifier = model.classifier[:5]  # Linear, ReLU, Dropout, Linear, ReLU
    elif arch.startswith("vit_") and feature_point == "cls":
        model.heads = nn.Identity()
    else:
        raise EncoderError(f"model '{model_id}': torchvision arch '{arch}' has no feature point '{feature_point}' "
                           f"(resnet*: pooled, vgg*: fc7, vit_*: cls)")
    return model


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    import torchvision

    if "id" not in spec["weights"]:
        raise EncoderError(f"model '{model_id}': torchvision models need weights.id (e.g. "
                           f"ResNet50_Weights.IMAGENET1K_V1); it also fixes the preprocessing")
    weights_enum = torchvision.models.get_weight(spec["weights"]["id"])
    with seeded(spec):
        model = torchvision.models.get_model(spec["arch"], weights=None)
    if files:
        state = read_state_dict(files["checkpoint"])
        load_strict(model, state, f"model '{model_id}'")
    model = cut(model, spec["arch"], spec["feature_point"], model_id).eval()
    transform = weights_enum.transforms()
    with torch.inference_mode():
        dim = int(model(torch.zeros(1, 3, transform.crop_size[0], transform.crop_size[0])).shape[1])
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=model,
        dim=dim,
        feature_point=spec["feature_point"],
        preprocessing=describe_transform(transform),
        weights=weights_record(spec, files),
        module=model,
        channels_last=not spec["arch"].startswith("vit_"),
    )
