"""The ResNet-50 chest X-ray encoders of the DLILP study (jusiro/DLILP@2c9d3011a04de994041ed05d15135d1e873c04b2,
Table 4): one torchvision ResNet-50 backbone, and per release the mapping from its checkpoint's layout to it.

The authors' loader (cxrvlms/modeling/model.py `VLMModel.load_from_pretrained`) starts from ImageNet weights and loads
most releases with strict=False, so a key that fails to map silently keeps its ImageNet value. medprobe loads strictly:
every backbone parameter and buffer comes from the checkpoint; the checkpoint's other keys (projection heads, text
towers, training heads) must be listed in the layout's `ignore`; anything else is an error naming the file and the key.

Feature point `pooled`: the global-average-pooled backbone feature before any projection, not normalised (the
authors' `--project_features False --norm_features False`): 2,048-d; MedKLIP's backbone stops after layer3, 1,024-d.
Preprocessing: the authors' file-level loader (cxr_preprocess.load_dlilp), given to embed as `extra["load"]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from medprobe.errors import EncoderError
from medprobe.models import cxr_preprocess
from medprobe.models.base import Encoder
from medprobe.models.checkpoints import DERIVED_BUFFERS, load_strict, read_state_dict_entry, seeded, weights_record


@dataclass(frozen=True)
class Layout:
    """Where a release keeps its ResNet-50: `entry` of the checkpoint dict (None: the file is the state dict),
    `prefix` of the backbone's keys (after a DDP 'module.'), `ignore`: the other keys the release has (a name ending
    in '.' is a prefix, else an exact key); `sequential`: the backbone is nn.Sequential(*resnet.children()[:k]), whose
    indices map to torchvision's names; `layer3_only`: the backbone stops after layer3 (MedKLIP)."""

    entry: str | None
    prefix: str
    ignore: tuple[str, ...]
    source: str
    foreign_objects: bool = False
    sequential: bool = False
    layer3_only: bool = False


# torchvision ResNet children, in order: the indices of nn.Sequential(*list(resnet.children())[:k])
_CHILDREN = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")

LAYOUTS: dict[str, Layout] = {
    # MediaBrain-SJTU/MedKLIP@8e60b035 PreTrain_MedKLIP/models/model_MedKLIP.py L66-72: res_features =
    # nn.Sequential(*list(resnet50.children())[:-3]); checkpoint {"model": DDP state dict, ...}
    "medklip": Layout("model", "res_features.", ("disease_embedding_layer.", "cl_fc.", "res_l1.", "res_l2.",
                                                 "decoder.", "classifier."),
                      "MediaBrain-SJTU/MedKLIP 8e60b035 PreTrain_MedKLIP/models/model_MedKLIP.py",
                      sequential=True, layer3_only=True),
    # xiaoman-zhang/KAD@591d999e A3_CLIP/models/clip_tqn.py ModelRes/ModelRes512: self.resnet (the full torchvision
    # ResNet-50, fc included) and res_features (a Sequential of the same modules, so the same tensors again);
    # checkpoint {"image_encoder": ..., "text_encoder": ..., "model": ...} (A3_CLIP/main.py L193)
    "ked": Layout("image_encoder", "resnet.", ("resnet.fc.", "res_features.", "res_l1.", "res_l2."),
                  "xiaoman-zhang/KAD 591d999e A3_CLIP/models/clip_tqn.py"),
    # hi-ml-multimodal 0.2.2 health_multimodal/image/model/model.py ImageModel: encoder (ImageEncoder) .encoder
    # (ResNetHIML, a torchvision ResNet whose unused ImageNet fc stays in the state dict), projector (MLP)
    "biovil": Layout(None, "encoder.encoder.", ("encoder.encoder.fc.", "projector."),
                     "microsoft/hi-ml hi-ml-multimodal 0.2.2 health_multimodal/image/model/{model,encoder}.py"),
    # marshuang80/gloria@416466af gloria/lightning/pretrain_model.py self.gloria, gloria/models/gloria_model.py
    # img_encoder/text_encoder, gloria/models/vision_model.py ImageEncoder.model (resnet_50: fc = Identity),
    # global_embedder, local_embedder; a PyTorch Lightning checkpoint {"state_dict": ..., "hyper_parameters": ...}
    "gloria": Layout("state_dict", "gloria.img_encoder.model.",
                     ("gloria.img_encoder.global_embedder.", "gloria.img_encoder.local_embedder.",
                      "gloria.text_encoder."),
                     "marshuang80/gloria 416466af gloria/models/vision_model.py", foreign_objects=True),
    # MedCLIP 0.0.3 (RyanWangZf/MedCLIP) medclip/modeling_medclip.py MedCLIPModel: vision_model (MedCLIPVisionModel:
    # .model = resnet50 with fc = Linear(2048, 512, bias=False), the projection), text_model, logit_scale
    "medclip": Layout(None, "vision_model.model.", ("vision_model.model.fc.", "text_model.", "logit_scale"),
                      "MedCLIP 0.0.3 medclip/modeling_medclip.py"),
    # kakaobrain/cxr-clip@955ab931 cxrclip/model/modules/image_encoder.py ResNet50 (self.resnet, fc deleted),
    # cxrclip/model/clip.py CXRClip; trainer.py L161-170 {"model": ..., "config": omegaconf, ...}
    "cxr_clip_r50": Layout("model", "image_encoder.resnet.", ("image_projection.", "text_encoder.",
                                                              "text_projection.", "logit_scale"),
                           "kakaobrain/cxr-clip 955ab931 cxrclip/model/modules/image_encoder.py",
                           foreign_objects=True),
    # jusiro/DLILP@2c9d3011 cxrvlms/modeling/model.py VLMModel: vision_model (VisionModel: .model = resnet50 with
    # fc = Identity, projection_head_vision, DLILP's projection_head2), text_model, class_prototypes, logit_scale(_head2)
    "dlilp": Layout(None, "vision_model.model.", ("vision_model.projection_head_vision.",
                                                  "vision_model.projection_head2.", "text_model.", "class_prototypes",
                                                  "logit_scale", "logit_scale_head2"),
                    "jusiro/DLILP 2c9d3011 cxrvlms/modeling/model.py"),
}


class ResNet50Pooled(nn.Module):
    """torchvision ResNet-50 without its classifier; `layer3_only` drops layer4 (MedKLIP's 1,024-d backbone)."""

    def __init__(self, layer3_only: bool = False):
        super().__init__()
        import torchvision

        self.model = torchvision.models.resnet50(weights=None)
        self.model.fc = nn.Identity()
        if layer3_only:
            self.model.layer4 = nn.Identity()
        self.dim = 1024 if layer3_only else 2048

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)  # conv ... layer4, adaptive average pool, flatten: the pooled feature


def _ignored(key: str, ignore: tuple[str, ...]) -> bool:
    return any(key.startswith(name) if name.endswith(".") else key == name for name in ignore)


def backbone_state(state: Mapping[str, torch.Tensor], layout: Layout, what: str) -> dict[str, torch.Tensor]:
    """The checkpoint's backbone tensors under torchvision's names; every other key must be one the layout ignores."""
    out, unexpected = {}, []
    for raw, value in state.items():
        key = raw.removeprefix("module.")
        if _ignored(key, layout.ignore):
            continue
        if not key.startswith(layout.prefix):
            unexpected.append(raw)
            continue
        name = key[len(layout.prefix):]
        if layout.sequential:
            match = re.match(r"(\d+)\.(.*)", name)
            index = int(match.group(1)) if match else -1
            if not match or index >= len(_CHILDREN):
                unexpected.append(raw)
                continue
            name = f"{_CHILDREN[index]}.{match.group(2)}"
        out[name] = value
    if unexpected:
        raise EncoderError(f"{what}: unexpected key(s) {unexpected[:5]} ({len(unexpected)} in all): neither the "
                           f"backbone ({layout.prefix}*) nor a part the layout ignores ({', '.join(layout.ignore)}); "
                           f"is this the release the registry names ({layout.source})?")
    return out


def load_backbone(model: ResNet50Pooled, state: Mapping[str, torch.Tensor], layout: Layout, what: str) -> None:
    mapped = backbone_state(state, layout, what)
    expected = set(model.model.state_dict())
    missing = sorted(k for k in expected - set(mapped) if not k.endswith(DERIVED_BUFFERS))
    if missing:
        if layout.sequential:  # name them as the checkpoint would: Sequential indices
            missing = [f"{_CHILDREN.index(k.split('.', 1)[0])}.{k.split('.', 1)[1]}" for k in missing]
        raise EncoderError(f"{what}: the checkpoint lacks backbone key(s) {[layout.prefix + k for k in missing[:5]]} "
                           f"({len(missing)} in all); medprobe loads every backbone tensor from the checkpoint")
    load_strict(model.model, mapped, what)


def _not_pil(model_id: str):
    def transform(image):
        raise EncoderError(f"model '{model_id}' reads image files itself (the DLILP study's loader: DICOM, JPEG draft "
                           f"decoding); it has no PIL-image transform: use encoder.extra['load'](bytes, path, invert)")
    return transform


def build(model_id: str, spec: Mapping, files: Mapping[str, Path] | None) -> Encoder:
    name = spec["arch_config"]["layout"]
    if name not in LAYOUTS:
        raise EncoderError(f"model '{model_id}': unknown checkpoint layout {name!r} ({', '.join(sorted(LAYOUTS))}); "
                           f"fix arch_config.layout in config/models.yaml")
    layout = LAYOUTS[name]
    with seeded(spec):
        model = ResNet50Pooled(layout.layer3_only)
    if files:
        path = files["checkpoint"]
        what = f"model '{model_id}' ({path})"
        load_backbone(model, read_state_dict_entry(path, layout.entry, foreign_objects=layout.foreign_objects),
                      layout, what)
    model.eval()
    if spec["feature_point"] != "pooled":
        raise EncoderError(f"model '{model_id}': unknown feature point {spec['feature_point']!r} (pooled)")
    pre = spec["preprocessing"]
    if pre.get("loader") != cxr_preprocess.LOADER:
        raise EncoderError(f"model '{model_id}': preprocessing.loader must be 'dlilp' (the study's file loader)")
    return Encoder(
        model_id=model_id,
        transform=_not_pil(model_id),
        forward=model,
        dim=model.dim,
        feature_point="pooled",
        preprocessing=cxr_preprocess.describe(pre["size"], pre["norm"]),
        weights=weights_record(spec, files),
        module=model,
        channels_last=True,
        extra={"load": cxr_preprocess.dlilp_loader(pre["size"], pre["norm"])},
    )
