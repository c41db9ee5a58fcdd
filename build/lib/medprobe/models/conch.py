"""CONCH (MahmoodLab/conch): a CoCa-style ViT-B/16 at 448 px. The linear-probe feature its README recommends is
`encode_image(proj_contrast=False, normalize=False)`: the trunk's tokens, pooled by the contrastive attentional
pooler (one query, 512-d), then its layer norm.

The CONCH package is not on PyPI, so the image side is assembled here from the same parts it is made of — timm's
VisionTransformer trunk and open_clip's AttentionalPooler — and loaded strictly from the checkpoint's `visual.trunk`,
`visual.attn_pool_contrast` and `visual.ln_contrast` tensors (the captioning side is not read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import (load_strict, read_state_dict, seeded, select, text_tower_config,
                                         weights_record)
from medprobe.models.transforms import build_transform


class ConchImageEncoder(nn.Module):
    def __init__(self, image_size: int, patch_size: int, width: int, layers: int, heads: int,
                 embed_dim_contrast: int, attn_pooler_heads: int):
        super().__init__()
        from open_clip.transformer import AttentionalPooler
        from timm.models.vision_transformer import VisionTransformer

        self.trunk = VisionTransformer(img_size=image_size, patch_size=patch_size, embed_dim=width, depth=layers,
                                       num_heads=heads, mlp_ratio=4.0, num_classes=0, dynamic_img_size=True)
        self.attn_pool_contrast = AttentionalPooler(d_model=embed_dim_contrast, context_dim=width,
                                                    n_head=attn_pooler_heads, n_queries=1)
        self.ln_contrast = nn.LayerNorm(embed_dim_contrast)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens = self.trunk.forward_features(pixels)
        return self.ln_contrast(self.attn_pool_contrast(tokens)[:, 0])


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    with seeded(spec):
        model = ConchImageEncoder(**spec["arch_config"])
    if files:
        visual = select(read_state_dict(files["checkpoint"]), "visual.")
        keep = {k: v for k, v in visual.items() if k.startswith(("trunk.", "attn_pool_contrast.", "ln_contrast."))}
        load_strict(model, keep, f"model '{model_id}'")
    model.eval()
    transform = build_transform(spec["preprocessing"])
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=model,
        dim=int(spec["arch_config"]["embed_dim_contrast"]),
        feature_point=spec["feature_point"],
        preprocessing=describe_transform(transform),
        weights=weights_record(spec, files),
        module=model,
    )


def build_text_encoder(model_id: str, spec: Mapping, files: Mapping[str, Path] | None):
    """CONCH's text tower for zero-shot: a CoCa text transformer (a CLS embedding appended after the tokens, the legacy
    CoCa padding mask, the final layer norm on the pooled CLS, a linear projection), which is open_clip's
    TextTransformer with `embed_cls`, loaded strictly from the checkpoint's `text.*`; the tokenizer is the release's
    byte-level BPE file. `encode.image_projection` is the checkpoint's `visual.proj_contrast`: the stored image feature
    (`encode_image(proj_contrast=False)`) times it is the image embedding that meets the text in the shared space."""
    from open_clip.transformer import TextTransformer
    from transformers import PreTrainedTokenizerFast

    from medprobe.errors import EncoderError

    url = spec.get("text_config", {}).get("tokenizer", {}).get("url")
    cfg = text_tower_config(model_id, spec, files, ("text_tokenizer",), f"the CONCH tokenizer file ({url})")
    n_tokens = cfg["context_length"] - 1 if cfg["embed_cls"] else cfg["context_length"]  # the last place is the CLS
    with seeded(spec):
        tower = TextTransformer(context_length=n_tokens, vocab_size=cfg["vocab_size"], width=cfg["width"],
                                heads=cfg["heads"], layers=cfg["layers"],
                                output_dim=int(spec["arch_config"]["embed_dim_contrast"]), embed_cls=cfg["embed_cls"],
                                pad_id=cfg["pad_id"], act_layer=nn.GELU)
    if "checkpoint" in files:
        state = read_state_dict(files["checkpoint"])
        load_strict(tower, select(state, "text."), f"model '{model_id}' text tower")
        if "visual.proj_contrast" not in state:
            raise EncoderError(f"model '{model_id}': {files['checkpoint']} has no visual.proj_contrast, the image side "
                               f"of the shared space")
        projection = state["visual.proj_contrast"].float()
    else:  # random weights (tests): a seeded projection of the same shape
        dim = int(spec["arch_config"]["embed_dim_contrast"])
        projection = torch.randn(dim, dim, generator=torch.Generator().manual_seed(0)) * dim ** -0.5
    tower.eval()
    special = cfg["tokenizer"]
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(files["text_tokenizer"]), bos_token=special["bos_token"],
                                        eos_token=special["eos_token"], pad_token=special["pad_token"])

    def tokenize(texts) -> torch.Tensor:
        return tokenizer(list(texts), max_length=n_tokens, add_special_tokens=True, return_token_type_ids=False,
                         truncation=True, padding="max_length", return_tensors="pt")["input_ids"]

    def encode(texts):
        with torch.inference_mode():
            return tower(tokenize(texts)).float()

    encode.module, encode.tokenizer, encode.image_projection = tower, tokenize, projection.numpy()
    return encode
