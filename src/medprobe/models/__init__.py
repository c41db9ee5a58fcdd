"""The model zoo: the registry's `family` picks a loader; every loader returns an Encoder.

A loader is `build(model_id, spec, files)`: `files` maps roles ("checkpoint", "tower", ...) to local files resolved by
fetch_weights; `files=None` builds the same architecture and preprocessing with a seeded random initialisation (the
registry's weights.source: random) — the only step that differs is loading the weights.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform

LOADERS: dict[str, str] = {
    "pixels": "medprobe.models.pixels",
    "timm": "medprobe.models.timm_family",
    "open_clip": "medprobe.models.open_clip_family",
    "torchvision": "medprobe.models.torchvision_family",
    "llava": "medprobe.models.llava_family",
    "llm2clip": "medprobe.models.llm2clip",
    "conch": "medprobe.models.conch",
    "cxr_clip": "medprobe.models.cxr_clip",
    "flair": "medprobe.models.flair",
    "cxr_resnet": "medprobe.models.cxr_resnet",
}


def build_encoder(model_id: str, spec: Mapping, files: Mapping[str, str | Path] | None = None) -> Encoder:
    family = spec["family"]
    if family not in LOADERS:
        raise EncoderError(f"model '{model_id}': no loader for family '{family}' "
                           f"(available: {', '.join(sorted(LOADERS))})")
    source = spec["weights"]["source"]
    if source not in ("none", "random") and not files:
        raise EncoderError(f"model '{model_id}': weights ({source}) are not resolved; run fetch_weights first: "
                           f"snakemake results/weights/{model_id}.json --cores 1")
    loader = importlib.import_module(LOADERS[family])
    encoder = loader.build(model_id, spec, {k: Path(v) for k, v in files.items()} if files else None)
    if encoder.dim != spec["dim"]:
        raise EncoderError(f"model '{model_id}': the registry says dim {spec['dim']} at feature point "
                           f"'{spec['feature_point']}', the loaded model gives {encoder.dim}; fix config/models.yaml")
    return encoder


def build_text_encoder(model_id: str, spec: Mapping, files: Mapping[str, str | Path] | None = None):
    """The model's text tower for zero-shot, `encode(list of str) -> (n, dim)`, from its family's loader."""
    loader = importlib.import_module(LOADERS[spec["family"]])
    if not spec.get("text_tower") or not hasattr(loader, "build_text_encoder"):
        raise EncoderError(f"model '{model_id}' has no text tower medprobe can load; remove it from zero-shot")
    return loader.build_text_encoder(model_id, spec, {k: Path(v) for k, v in files.items()} if files else None)


__all__ = ["Encoder", "LOADERS", "build_encoder", "describe_transform"]
