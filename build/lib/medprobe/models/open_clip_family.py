"""open_clip models: CLIP, OpenCLIP ViT-H/14 and ViT-bigG/14, EVA02 (built-in pretrained tags) and BiomedCLIP (an
`hf-hub:` model). The feature is the image tower's output, i.e. `encode_image(normalize=False)`.

For a built-in tag the architecture and preprocessing follow the tag's pretrained config (QuickGELU for OpenAI
weights, mean/std, interpolation, resize mode), then the fetched checkpoint is loaded with open_clip's own
load_checkpoint. For BiomedCLIP the image encoder is only the vision tower, built from the registry's copy of its
open_clip_config.json (checked against the fetched file). Its text tower (zero-shot) is open_clip's HFTextEncoder
over BiomedBERT, built from the config.json and vocab.txt fetch_weights took from BiomedBERT's repository, with the
checkpoint's text.* weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import (load_strict, read_state_dict, seeded, select, text_tower_config,
                                         weights_record)


def _check_hub_config(model_id: str, spec: Mapping, files: Mapping[str, Path] | None, part: str) -> None:
    """The registry's copy of an hf-hub model's config must equal the fetched open_clip_config.json."""
    if not files or "config" not in files:
        return
    hub_model = json.loads(Path(files["config"]).read_text())["model_cfg"]
    if part == "vision":
        pairs = [(key, hub_model.get(key), spec["arch_config"].get(key)) for key in ("embed_dim", "vision_cfg")]
    else:
        hub_text = hub_model.get("text_cfg", {})
        pairs = [(f"text_cfg.{key}", hub_text.get(key), value) for key, value in spec["text_config"].items()]
    for key, hub_value, ours in pairs:
        if hub_value != ours:
            raise EncoderError(f"model '{model_id}': {files['config']} has {key}={hub_value!r}, "
                               f"config/models.yaml has {ours!r}; update the registry")


def _hub_vision_tower(model_id: str, spec: Mapping, files: Mapping[str, Path] | None):
    import open_clip
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    model_cfg = spec["arch_config"]
    _check_hub_config(model_id, spec, files, "vision")
    with seeded(spec):
        visual = _build_vision_tower(model_cfg["embed_dim"], CLIPVisionCfg(**model_cfg["vision_cfg"]))
    if files:
        load_strict(visual, select(read_state_dict(files["checkpoint"]), "visual."), f"model '{model_id}'")
    pre = spec["preprocessing"]
    preprocess = open_clip.image_transform(model_cfg["vision_cfg"]["image_size"], is_train=False,
                                           mean=tuple(pre["mean"]), std=tuple(pre["std"]),
                                           interpolation=pre["interpolation"], resize_mode="shortest")
    return visual, preprocess, int(model_cfg["embed_dim"])


def _tagged_clip(spec: Mapping, files: Mapping[str, Path] | None):
    """(the whole CLIP model of a built-in tag, its pretrained config): seeded, then the fetched checkpoint."""
    import open_clip

    tag = spec["weights"].get("id")
    cfg = open_clip.get_pretrained_cfg(spec["arch"], tag) if tag else {}
    with seeded(spec):
        model = open_clip.create_model(spec["arch"], pretrained=None, force_quick_gelu=bool(cfg.get("quick_gelu")))
    if files:
        open_clip.load_checkpoint(model, str(files["checkpoint"]))
    return model, cfg


def _tagged_model(model_id: str, spec: Mapping, files: Mapping[str, Path] | None):
    import open_clip

    model, cfg = _tagged_clip(spec, files)
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
        return _hub_text_encoder(model_id, spec, files)
    model, _ = _tagged_clip(spec, files)
    model.eval()
    tokenizer = open_clip.get_tokenizer(spec["arch"])

    def encode(texts):
        with torch.inference_mode():
            return model.encode_text(tokenizer(list(texts)), normalize=False).float()

    return encode


def _hub_text_encoder(model_id: str, spec: Mapping, files: Mapping[str, Path] | None):
    """An hf-hub model's Hugging Face text tower (BiomedCLIP: BiomedBERT, CLS token, MLP projection), built offline
    from the fetched config.json and vocab.txt, its weights the checkpoint's text.* entries, strictly."""
    import torch
    from open_clip.hf_model import HFTextEncoder
    from open_clip.tokenizer import HFTokenizer

    text_cfg = spec.get("text_config") or {}
    text_cfg = text_tower_config(model_id, spec, files, ("text_config", "text_vocab"),
                                 f"the text tower's config.json and vocab.txt from {text_cfg.get('hf_model_name')}")
    _check_hub_config(model_id, spec, files, "text")
    # config=None and pretrained=False: the architecture from the local config.json, without BERT's unused pooler
    # layer, exactly as open_clip builds it before loading a checkpoint
    with seeded(spec):
        tower = HFTextEncoder(str(Path(files["text_config"]).parent), output_dim=int(spec["arch_config"]["embed_dim"]),
                              pooler_type=text_cfg["hf_pooler_type"], proj_type=text_cfg["hf_proj_type"],
                              pretrained=False)
    if "checkpoint" in files:
        load_strict(tower, select(read_state_dict(files["checkpoint"]), "text."), f"model '{model_id}' text tower")
    tower.eval()
    tokenizer = HFTokenizer(str(Path(files["text_vocab"]).parent), context_length=text_cfg["context_length"])

    def encode(texts):
        with torch.inference_mode():
            return tower(tokenizer(list(texts))).float()

    encode.module, encode.tokenizer = tower, tokenizer
    return encode
