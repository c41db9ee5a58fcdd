"""The LLaVA family (LLaVA v1.5, LLaVA-Med v1.5, LLaVA-Med++ / LLaVA-Tri): the frozen OpenAI CLIP ViT-L/14-336 tower
(transformers CLIPVisionModel) and the checkpoint's `mm_projector`, loaded from the shard(s) that hold it — never the
7-8B language model.

Feature points (registry `feature_points`):
  projector_mean  hidden_states[mm_vision_select_layer] patch tokens (CLS dropped, as LLaVA's 'patch' feature) through
                  mm_projector, averaged over the 576 tokens -> 4096-d (the default: what the LLM sees)
  patch_mean      the same patch tokens averaged, before the projector -> 1024-d
  tower_cls       the tower's pooled output (post-layernorm CLS) -> 1024-d
Images are padded to a square with the mean colour first (LLaVA's image_aspect_ratio 'pad'; LLaVA-Med's own code
jitters that paste by up to one pixel, which is not reproduced).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from medprobe.errors import EncoderError
from medprobe.models.base import Encoder, describe_transform
from medprobe.models.checkpoints import load_strict, read_state_dict, seeded, select, weights_record
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


def build_projector(projector_type: str, in_dim: int, out_dim: int) -> nn.Sequential:
    if projector_type == "linear":
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    match = PROJECTOR.match(projector_type)
    if not match:
        raise EncoderError(f"mm_projector_type {projector_type!r} is not supported (linear, mlpNx_gelu)")
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    for _ in range(int(match.group(1)) - 1):
        layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*layers)


def projector_tensors(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The mm_projector tensors of the given shards, keyed '0.weight', '2.bias', ... (nothing else is read)."""
    found: dict[str, torch.Tensor] = {}
    for path in paths:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    if "mm_projector." in key:
                        found[key.split("mm_projector.", 1)[1]] = handle.get_tensor(key)
        else:  # a zip-format torch checkpoint, memory-mapped: only the projector's storage is read
            state = read_state_dict(path)
            for key, value in state.items():
                if "mm_projector." in key:
                    found[key.split("mm_projector.", 1)[1]] = value.clone()
            del state
    return found


def check_llava_config(model_id: str, config: Mapping, spec: Mapping) -> None:
    arch = spec["arch_config"]
    problems = []
    if config.get("mm_vision_tower", spec["arch"]) != spec["arch"]:
        problems.append(f"mm_vision_tower is {config.get('mm_vision_tower')!r}, the registry's tower is "
                        f"{spec['arch']!r}")
    if config.get("s2"):
        problems.append("it uses S2 multi-scale tower features (s2: true), which this loader does not implement")
    if config.get("mm_hidden_size", arch["tower"]["hidden_size"]) != arch["tower"]["hidden_size"]:
        problems.append(f"mm_hidden_size is {config.get('mm_hidden_size')}, the tower gives "
                        f"{arch['tower']['hidden_size']}")
    if config.get("mm_vision_select_feature", "patch") != "patch":
        problems.append(f"mm_vision_select_feature is {config.get('mm_vision_select_feature')!r}, not 'patch'")
    if config.get("mm_vision_select_layer", arch["select_layer"]) != arch["select_layer"]:
        problems.append(f"mm_vision_select_layer is {config.get('mm_vision_select_layer')}, the registry says "
                        f"{arch['select_layer']}")
    if config.get("image_aspect_ratio", "pad") != "pad":
        problems.append(f"image_aspect_ratio is {config.get('image_aspect_ratio')!r}; the registry pads to square")
    if problems:
        raise EncoderError(f"model '{model_id}': the checkpoint's config.json differs from config/models.yaml: "
                           + "; ".join(problems))


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    arch = spec["arch_config"]
    tower = clip_vision_tower(model_id, spec, files)
    projector_cfg = dict(arch["projector"])
    if files:
        config = json.loads(Path(files["config"]).read_text())
        check_llava_config(model_id, config, spec)
        projector_cfg = {"type": config.get("mm_projector_type", "linear"), "hidden_size": config["hidden_size"]}
    with seeded(spec):
        projector = build_projector(projector_cfg["type"], arch["tower"]["hidden_size"], projector_cfg["hidden_size"])
    if files:
        shards = [files[k] for k in sorted(files) if k.startswith("projector_")]
        load_strict(projector, projector_tensors(shards), f"model '{model_id}' mm_projector")
    projector.eval()
    layer = int(arch["select_layer"])
    point = spec["feature_point"]

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        out = tower(pixel_values=pixels, output_hidden_states=point != "tower_cls")
        if point == "tower_cls":
            return out.pooler_output
        patches = out.hidden_states[layer][:, 1:]
        if point == "patch_mean":
            return patches.mean(dim=1)
        if point == "projector_mean":
            return projector(patches).mean(dim=1)
        raise EncoderError(f"model '{model_id}': unknown feature point {point!r} "
                           f"(projector_mean, patch_mean, tower_cls)")

    dims = {"tower_cls": arch["tower"]["hidden_size"], "patch_mean": arch["tower"]["hidden_size"],
            "projector_mean": projector_cfg["hidden_size"]}
    transform = build_transform(spec["preprocessing"])
    return Encoder(
        model_id=model_id,
        transform=transform,
        forward=forward,
        dim=int(dims.get(point, -1)),
        feature_point=point,
        preprocessing=describe_transform(transform),
        weights=weights_record(spec, files),
        module=nn.ModuleDict({"tower": tower, "projector": projector}),
    )
