"""open_clip models: CLIP, OpenCLIP ViT-H/14 and ViT-bigG/14, EVA02 (built-in pretrained tags) and BiomedCLIP (an
`hf-hub:` model). The feature is the image tower's output, i.e. `encode_image(normalize=False)`.

For a built-in tag the architecture and preprocessing follow the tag's pretrained config (QuickGELU for OpenAI
weights, mean/std, interpolation, resize mode), then the fetched checkpoint is loaded with open_clip's own
load_checkpoint. For BiomedCLIP only the vision tower is built, from the registry's copy of its open_clip_config.json
(checked against the fetched file), because its text tower would need BiomedBERT's config from the hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import load_strict, read_state_dict, seeded, select, weights_record


def _hub_vision_tower(model_id: str, spec: Mapping, files: Mapping[str, Path] | None):
    import open_clip
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    model_cfg = spec["arch_config"]
    if files and "config" in files:
        hub = json.loads(Path(files["config"]).read_text())
        hub_model = hub["model_cfg"]
        for key in ("embed_dim", "vision_cfg"):
            if hub_model.get(key) != model_cfg.get(key):
                raise EncoderError(f"model '{model_id}': {files['config']} has {key}={hub_model.get(key)!r}, "
                                   f"config/models.yaml has {model_cfg.get(key)!r}; update the registry")
    with seeded(spec):
        visual = _build_vision_tower(model_cfg["embed_dim"], CLIPVisionCfg(**model_cfg["vision_cfg"]))
    if files:
        load_strict(visual, select(read_state_dict(files["checkpoint"]), "visual."), f"model '{model_id}'")
    pre = spec["preprocessing"]
    preprocess = open_clip.image_transform(model_cfg["vision_cfg"]["image_size"], is_train=False,
                                           mean=tuple(pre["mean"]), std=tuple(pre["std"]),
                                           interpolation=pre["interpolation"], resize_mode="shortest")
    return visual, preprocess, int(model_cfg["embed_dim"])


def _tagged_model(model_id: str, spec: Mapping, files: Mapping[str, Path] | None):
    import open_clip

    tag = spec["weights"].get("id")
    cfg = open_clip.get_pretrained_cfg(spec["arch"], tag) if tag else {}
    with seeded(spec):
        model = open_clip.create_model(spec["arch"], pretrained=None, force_quick_gelu=bool(cfg.get("quick_gelu")))
    if files:
        open_clip.load_checkpoint(model, str(files["checkpoint"]))
    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False, mean=cfg.get("mean"),
                                           std=cfg.get("std"), interpolation=cfg.get("interpolation"),
                                           resize_mode=cfg.get("resize_mode"))
    embed_dim = int(open_clip.get_model_config(spec["arch"])["embed_dim"])
    return model.visual, preprocess, embed_dim  # the text tower is dropped with `model`


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    if spec["arch"].startswith("hf-hub:"):
        visual, preprocess, dim = _hub_vision_tower(model_id, spec, files)
    else:
        visual, preprocess, dim = _tagged_model(model_id, spec, files)
    visual.eval()
    return Encoder(
        model_id=model_id,
        transform=preprocess,
        forward=visual,
        dim=dim,
        feature_point=spec["feature_point"],
        preprocessing=describe_transform(preprocess),
        weights=weights_record(spec, files),
        module=visual,
    )


def build_text_encoder(model_id: str, spec: Mapping, files: Mapping[str, Path] | None):
    """`encode(list of str) -> (n, dim)` with the model's own text tower and tokenizer (built-in open_clip tags;
    the same seeded initialisation as the image tower when the weights are random)."""
    import open_clip
    import torch

    if spec["arch"].startswith("hf-hub:"):
        raise EncoderError(f"model '{model_id}': zero-shot needs its Hugging Face text tower, which this version of "
                           f"medprobe does not load")
    tag = spec["weights"].get("id")
    cfg = open_clip.get_pretrained_cfg(spec["arch"], tag) if tag else {}
    with seeded(spec):
        model = open_clip.create_model(spec["arch"], pretrained=None, force_quick_gelu=bool(cfg.get("quick_gelu")))
    if files:
        open_clip.load_checkpoint(model, str(files["checkpoint"]))
    model.eval()
    tokenizer = open_clip.get_tokenizer(spec["arch"])

    def encode(texts):
        with torch.inference_mode():
            return model.encode_text(tokenizer(list(texts)), normalize=False).float()

    return encode
