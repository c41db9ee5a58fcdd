"""The LLaVA family (LLaVA v1.5, LLaVA-Med v1.5, LLaVA-Med++ / LLaVA-Tri): the frozen OpenAI CLIP ViT-L/14-336 tower
(transformers CLIPVisionModel) and the checkpoint's `mm_projector`, loaded from the shard(s) that hold it — never the
7-8B language model. Facts from haotian-liu/LLaVA@c121f0432da27facab705978f83c4ada465e46fd (= PyPI llava-torch
1.2.2.post1 plus S2): llava/mm_utils.py (expand2square, process_images), llava/model/multimodal_projector/builder.py,
llava/model/multimodal_encoder/clip_encoder.py (CLIPVisionTower, CLIPVisionTowerS2), llava/model/llava_arch.py.

Feature points (registry `feature_points`):
  projector_mean  hidden_states[mm_vision_select_layer] patch tokens (CLS dropped, LLaVA's 'patch' feature) through
                  mm_projector (LlavaMetaForCausalLM.encode_images), averaged over the 576 tokens -> 4096-d (the
                  default: what the LLM sees)
  patch_mean      the same patch tokens averaged, before the projector -> 1024-d (S2: 3072-d)
  tower_cls       the tower's pooled output (post-layernorm CLS) -> 1024-d (not for S2 towers)
The tower is the one the checkpoint's config names, from its own repository, as LLaVA's CLIPVisionTower loads it
with delay_load; only a config with unfreeze_mm_vision_tower makes the checkpoint's own copy replace it.
Preprocessing follows the checkpoint's image_aspect_ratio: 'pad' centres the image on a square of the mean colour
(122, 116, 104), anything else goes straight to CLIPImageProcessor (shortest side resized with PIL bicubic, centre
crop with a floored offset). LLaVA-Med v1.5's own copy of expand2square shifts the paste by random.randint(0, 1)
pixel (microsoft/LLaVA-Med@d406e3fc7c3d1e4c797a7676de18cbfd070b6d2c llava/mm_utils.py L21, L27); medprobe pastes
at LLaVA's centred offset, which is one of LLaVA-Med's two.

S2 (LLaVA-Med++: MedTrinity-25M's LLaVA-Tri, fine-tuned from MBZUAI/LLaVA-Meta-Llama-3-8B-Instruct-FT-S2; config
`s2: true`): the image is preprocessed at the largest scale (1008), then s2wrapper's multiscale forward
(bfshi/scaling_on_scales@9c008a37540e761f53574b488979db6e49a64312 s2wrapper/core.py L14-62, utils.py L11-31): per
scale, bicubic resize of the normalised tensor (no antialiasing), 336-pixel tiles through the tower, tiles merged,
area-pooled to the smallest scale's 24 x 24 grid, scales concatenated on channels in ascending order -> 576 x 3072.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import (SAFETENSORS, checkpoint_format, load_strict, read_state_dict, seeded, select,
                                         weights_record)
from medprobe.models.transforms import build_transform

PROJECTOR = re.compile(r"^mlp(\d+)x_gelu$")


def clip_vision_tower(model_id: str, spec: Mapping, files: Mapping[str, Path] | None, *, with_projection=False):
    """A transformers CLIP vision tower: from the fetched config and weights, or the registry's config (random)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    expected = dict(spec["arch_config"]["tower"])
    if files and "tower_config" in files:
        hub = json.loads(Path(files["tower_config"]).read_text())
        hub_vision = hub.get("vision_config", hub)
        for key, value in expected.items():
            if key in hub_vision and hub_vision[key] != value:
                raise EncoderError(f"model '{model_id}': tower config {files['tower_config']} has {key}="
                                   f"{hub_vision[key]!r}, config/models.yaml has {value!r}")
    config = CLIPVisionConfig(**expected)
    cls = CLIPVisionModelWithProjection if with_projection else CLIPVisionModel
    with seeded(spec):
        tower = cls(config)
    if files and "tower" in files:
        state = read_state_dict(files["tower"])
        core = getattr(tower, "vision_model", tower)  # transformers 5 flattens CLIPVisionModel
        load_strict(core, select(state, "vision_model."), f"model '{model_id}' tower")
    return tower.eval()


def build_projector(projector_type: str, in_dim: int, out_dim: int) -> nn.Module:
    """LLaVA's build_vision_projector: 'linear' is a bare Linear (keys weight, bias), 'mlpNx_gelu' a Sequential of N
    Linears with GELUs between (keys 0.weight, 2.weight, ...), 'identity' nothing."""
    if projector_type == "linear":
        return nn.Linear(in_dim, out_dim)
    if projector_type == "identity":
        return nn.Identity()
    match = PROJECTOR.match(projector_type)
    if not match:
        raise EncoderError(f"mm_projector_type {projector_type!r} is not supported (linear, mlpNx_gelu, identity)")
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    for _ in range(int(match.group(1)) - 1):
        layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*layers)


def checkpoint_tensors(paths: list[Path], marker: str) -> dict[str, torch.Tensor]:
    """The tensors of the given checkpoint files whose key contains `marker` ('mm_projector.', or the vision tower's
    'vision_tower.vision_tower.'), keyed by what follows it; nothing else is read."""
    found: dict[str, torch.Tensor] = {}
    for path in paths:
        if checkpoint_format(path) == SAFETENSORS:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    if marker in key:
                        found[key.split(marker, 1)[1]] = handle.get_tensor(key)
        else:  # a torch checkpoint (zip format: memory-mapped, so only these tensors' storage is read)
            state = read_state_dict(path)
            for key, value in state.items():
                if marker in key:
                    found[key.split(marker, 1)[1]] = value.clone()
            del state
    return found


def s2_scales(config: Mapping) -> list[int]:
    """The scales of an S2 tower, ascending (CLIPVisionTowerS2: s2_scales, default '336,672,1008')."""
    return sorted(int(x) for x in str(config.get("s2_scales", "336,672,1008")).split(","))


def check_llava_config(model_id: str, config: Mapping, spec: Mapping) -> None:
    arch = spec["arch_config"]
    scales = arch.get("s2_scales")
    tower_dim = arch["tower"]["hidden_size"] * (len(scales) if scales else 1)
    problems = []
    if config.get("mm_vision_tower", spec["arch"]) != spec["arch"]:
        problems.append(f"mm_vision_tower is {config.get('mm_vision_tower')!r}, the registry's tower is "
                        f"{spec['arch']!r}")
    if bool(config.get("s2")) != bool(scales):
        problems.append(f"s2 is {config.get('s2')!r} but the registry's arch_config has "
                        + (f"s2_scales {scales}" if scales else "no s2_scales"))
    elif scales and s2_scales(config) != list(scales):
        problems.append(f"s2_scales is {config.get('s2_scales')!r}, the registry says {scales}")
    if config.get("mm_hidden_size", tower_dim) != tower_dim:
        problems.append(f"mm_hidden_size is {config.get('mm_hidden_size')}, the tower gives {tower_dim}")
    if config.get("mm_vision_select_feature", "patch") != "patch":
        problems.append(f"mm_vision_select_feature is {config.get('mm_vision_select_feature')!r}, not 'patch'")
    if config.get("mm_vision_select_layer", arch["select_layer"]) != arch["select_layer"]:
        problems.append(f"mm_vision_select_layer is {config.get('mm_vision_select_layer')}, the registry says "
                        f"{arch['select_layer']}")
    if config.get("image_aspect_ratio") == "anyres":
        problems.append("image_aspect_ratio is 'anyres' (LLaVA-1.6 tiling), which this loader does not implement")
    if problems:
        raise EncoderError(f"model '{model_id}': the checkpoint's config.json differs from config/models.yaml: "
                           + "; ".join(problems))


def s2_forward(features, pixels: torch.Tensor, scales: list[int], split: int) -> torch.Tensor:
    """s2wrapper.forward(features, pixels, img_sizes=scales, max_split_size=split) with LLaVA's arguments
    (num_prefix_token 0, output 'bnc'): (B, T, C) tokens of `features` at every scale -> (B, T, C * len(scales))."""
    maps = []
    for size in scales:
        x = torch.nn.functional.interpolate(pixels.float(), size=(size, size), mode="bicubic").to(pixels.dtype)
        n = math.ceil(size / split)
        b, c, h, w = x.shape
        # tiles in s2wrapper's split_chessboard order: (row, column, batch), batch innermost
        tiles = x.reshape(b, c, n, h // n, n, w // n).permute(2, 4, 0, 1, 3, 5).reshape(n * n * b, c, h // n, w // n)
        out = features(tiles)
        grid = int(math.isqrt(out.shape[1]))
        out = out.transpose(1, 2).reshape(n, n, b, out.shape[2], grid, grid)
        maps.append(out.permute(2, 3, 0, 4, 1, 5).reshape(b, out.shape[3], n * grid, n * grid))
    grid = maps[0].shape[-1]
    maps = [torch.nn.functional.interpolate(m.float(), size=(grid, grid), mode="area").to(m.dtype) for m in maps]
    return torch.cat(maps, dim=1).flatten(2).transpose(1, 2)


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    arch = spec["arch_config"]
    config = json.loads(Path(files["config"]).read_text()) if files else {}
    if files:
        check_llava_config(model_id, config, spec)
    tower = clip_vision_tower(model_id, spec, files)
    shards = checkpoint_files(files) if files else []
    if config.get("unfreeze_mm_vision_tower"):  # the checkpoint carries its own (fine-tuned) tower
        core = getattr(tower, "vision_model", tower)
        own = checkpoint_tensors(shards, "vision_tower.vision_tower.")
        load_strict(core, select(own, "vision_model."), f"model '{model_id}' tower (unfreeze_mm_vision_tower)")
    scales = list(arch.get("s2_scales") or [])
    tower_dim = arch["tower"]["hidden_size"] * (len(scales) if scales else 1)
    projector_cfg = dict(arch["projector"])
    if files:
        projector_cfg = {"type": config.get("mm_projector_type", "linear"), "hidden_size": config["hidden_size"]}
    with seeded(spec):
        projector = build_projector(projector_cfg["type"], tower_dim, projector_cfg["hidden_size"])
    if files:
        load_strict(projector, checkpoint_tensors(shards, "mm_projector."), f"model '{model_id}' mm_projector")
    projector.eval()
    layer = int(arch["select_layer"])
    point = spec["feature_point"]
    if point == "tower_cls" and scales:
        raise EncoderError(f"model '{model_id}': an S2 tower has no single CLS token; choose projector_mean or "
                           f"patch_mean")

    def patch_tokens(pixels: torch.Tensor) -> torch.Tensor:  # CLIPVisionTower.forward: feature_select('patch')
        return tower(pixel_values=pixels, output_hidden_states=True).hidden_states[layer][:, 1:]

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        if point == "tower_cls":
            return tower(pixel_values=pixels).pooler_output
        patches = s2_forward(patch_tokens, pixels, scales, scales[0]) if scales else patch_tokens(pixels)
        if point == "patch_mean":
            return patches.mean(dim=1)
        if point == "projector_mean":
            return projector(patches).mean(dim=1)
        raise EncoderError(f"model '{model_id}': unknown feature point {point!r} "
                           f"(projector_mean, patch_mean, tower_cls)")

    dims = {"tower_cls": arch["tower"]["hidden_size"], "patch_mean": tower_dim,
            "projector_mean": projector_cfg["hidden_size"]}
    pre = dict(spec["preprocessing"])
    if files:  # LLaVA's process_images pads only for image_aspect_ratio 'pad'
        pre["pad_to_square"] = config.get("image_aspect_ratio") == "pad"
    transform = build_transform(pre)
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=forward,
        dim=int(dims.get(point, -1)),
        feature_point=point,
        preprocessing={**describe_transform(transform), **({"s2_scales": scales} if scales else {})},
        weights=weights_record(spec, files),
        module=nn.ModuleDict({"tower": tower, "projector": projector}),
    )


def checkpoint_files(files: Mapping[str, Path]) -> list[Path]:
    """The checkpoint's weight files: its shards (shard_0, shard_1, ...), or its single file when it has no index."""
    shards = sorted((k for k in files if k.startswith("shard_")), key=lambda k: int(k.split("_")[1]))
    if shards:
        return [files[k] for k in shards]
    single = files.get("weights_index")
    return [single] if single and not single.name.endswith(".json") else []
