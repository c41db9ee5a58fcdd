"""open_clip models (CLIP, OpenCLIP, EVA02, BiomedCLIP): the image tower's `encode_image(normalize=False)`."""

from __future__ import annotations

from typing import Mapping

from medprobe.models.base import Encoder, describe_transform
from medprobe.models.weights import seeded, weights_record


def build(model_id: str, spec: Mapping) -> Encoder:
    import open_clip

    source = spec["weights"]["source"]
    pretrained = spec["weights"]["id"] if source == "open_clip" else None
    with seeded(spec):
        model, _, preprocess = open_clip.create_model_and_transforms(spec["arch"], pretrained=pretrained)
    model.eval()
    return Encoder(
        model_id=model_id,
        transform=preprocess,
        forward=lambda batch: model.encode_image(batch, normalize=False),
        dim=int(model.visual.output_dim),
        feature_point=spec["feature_point"],
        preprocessing=describe_transform(preprocess),
        weights=weights_record(spec),
        module=model.visual,
    )
