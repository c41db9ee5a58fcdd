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
from medprobe.models.checkpoints import load_strict, read_state_dict, seeded, select, weights_record
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
