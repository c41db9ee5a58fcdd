"""The model zoo: the registry's `family` picks a loader; every loader returns an Encoder."""

from __future__ import annotations

from typing import Callable, Mapping

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform


def _pixels(model_id, spec):
    from medprobe.models import pixels
    return pixels.build(model_id, spec)


def _timm(model_id, spec):
    from medprobe.models import timm_family
    return timm_family.build(model_id, spec)


def _open_clip(model_id, spec):
    from medprobe.models import open_clip_family
    return open_clip_family.build(model_id, spec)


def _torchvision(model_id, spec):
    from medprobe.models import torchvision_family
    return torchvision_family.build(model_id, spec)


LOADERS: dict[str, Callable[[str, Mapping], Encoder]] = {
    "pixels": _pixels,
    "timm": _timm,
    "open_clip": _open_clip,
    "torchvision": _torchvision,
}


def build_encoder(model_id: str, spec: Mapping) -> Encoder:
    family = spec["family"]
    if family not in LOADERS:
        raise EncoderError(
            f"model '{model_id}': this version of medprobe has no loader for family '{family}' "
            f"(available: {', '.join(sorted(LOADERS))}). Remove '{model_id}' from the config's models."
        )
    encoder = LOADERS[family](model_id, spec)
    if encoder.dim != spec["dim"]:
        raise EncoderError(f"model '{model_id}': the registry says dim {spec['dim']}, the loaded model gives "
                           f"{encoder.dim}; fix config/models.yaml")
    return encoder


__all__ = ["Encoder", "LOADERS", "build_encoder", "describe_transform"]
