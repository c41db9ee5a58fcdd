"""FLAIR (jusiro/FLAIR, retinal fundus): torchvision ResNet-50 and a bias-free linear projection 2048 -> 512; for
zero-shot, its text_model: Bio_ClinicalBERT pooled over hidden states and projected into the same space.

Preprocessing is FLAIR's own: pixels scaled to [0, 1] without mean/std, the long side resized to 512 and zero-padded
right and bottom to 512 x 512. Feature points: projection (FLAIR's vision_model output: L2-normalise, project,
L2-normalise; 512-d, default) and backbone (the raw 2048-d pooled ResNet feature, FLAIR's projection=False).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import (load_strict, read_state_dict, seeded, select, text_tower_config,
                                         weights_record)
from medprobe.models.transforms import build_transform


class _Projection(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.projection = nn.Linear(in_dim, out_dim, bias=False)


class FlairVision(nn.Module):
    def __init__(self, proj_dim: int = 512):
        super().__init__()
        import torchvision

        self.model = torchvision.models.resnet50(weights=None)
        self.model.fc = nn.Identity()
        self.projection_head_vision = _Projection(2048, proj_dim)

    def backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = F.normalize(self.model(pixels), dim=-1)
        return F.normalize(self.projection_head_vision.projection(features), dim=-1)


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    with seeded(spec):
        model = FlairVision(int(spec["arch_config"]["proj_dim"]))
    if files:
        load_strict(model, select(read_state_dict(files["checkpoint"]), "vision_model."), f"model '{model_id}'")
    model.eval()
    point = spec["feature_point"]
    if point not in ("projection", "backbone"):
        raise EncoderError(f"model '{model_id}': unknown feature point {point!r} (projection, backbone)")
    transform = build_transform(spec["preprocessing"])
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=model if point == "projection" else model.backbone,
        dim=int(spec["arch_config"]["proj_dim"]) if point == "projection" else 2048,
        feature_point=point,
        preprocessing=describe_transform(transform),
        weights=weights_record(spec, files),
        module=model,
        channels_last=True,
    )


class FlairText(nn.Module):
    """FLAIR's text_model: a BERT whose hidden states at `layers` are averaged over tokens (padding included, as in
    FLAIR) and then over the layers; then L2-normalise, project (no bias), L2-normalise."""

    def __init__(self, bert_dir: Path, proj_dim: int, layers: list[int]):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(str(bert_dir))
        self.model = AutoModel.from_config(config)  # with BERT's pooler, as AutoModel.from_pretrained built it
        self.projection_head_text = _Projection(config.hidden_size, proj_dim)
        self.layers = list(layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
        embed = torch.stack([hidden[i] for i in self.layers]).mean(2).mean(0)
        embed = F.normalize(embed, dim=-1)
        return F.normalize(self.projection_head_text.projection(embed), dim=-1)


def build_text_encoder(model_id: str, spec: Mapping, files: Mapping[str, Path] | None):
    """`encode(list of str) -> (n, 512)`: FLAIR's text tower, weights from the checkpoint's `text_model.*` (strict),
    architecture and tokenizer from Bio_ClinicalBERT's config.json and vocab.txt. One call tokenizes its texts
    together, padded to the longest, which is how FLAIR embeds the prompts of one class."""
    from transformers import AutoTokenizer

    cfg = text_tower_config(model_id, spec, files, ("text_config", "text_vocab"),
                            f"the text tower's config.json and vocab.txt from "
                            f"{spec.get('text_config', {}).get('hf_model_name')}")
    with seeded(spec):
        tower = FlairText(Path(files["text_config"]).parent, int(spec["arch_config"]["proj_dim"]),
                          cfg["hidden_states"])
    if "checkpoint" in files:
        load_strict(tower, select(read_state_dict(files["checkpoint"]), "text_model."),
                    f"model '{model_id}' text tower")
    tower.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(Path(files["text_vocab"]).parent))
    tokenizer.model_max_length = cfg["max_length"]

    def tokenize(texts):
        return tokenizer(list(texts), truncation=True, padding=True, return_tensors="pt")

    def encode(texts):
        tokens = tokenize(texts)
        with torch.inference_mode():
            return tower(tokens["input_ids"], tokens["attention_mask"]).float()

    encode.module, encode.tokenizer = tower, tokenize
    return encode
