"""The weight-free baseline: the image itself, grayscale, resized to 32x32, flattened (1024-d), scaled to [0, 1].

An honest lower bound: any encoder worth its weights should beat raw pixels on the same probe.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from PIL import Image

from medprobe.models.base import Encoder

SIZE = 32


def _to_pixels(image: Image.Image) -> torch.Tensor:
    gray = image.convert("L").resize((SIZE, SIZE), Image.Resampling.BILINEAR)  # ITU-R 601-2 luma, antialiased
    return torch.from_numpy(np.asarray(gray, dtype=np.float32).reshape(-1) / 255.0)


def build(model_id: str, spec: Mapping, files=None) -> Encoder:
    return Encoder(
        model_id=model_id,
        transform=_to_pixels,
        forward=lambda batch: batch,
        dim=SIZE * SIZE,
        feature_point="pixels",
        preprocessing={"size": SIZE, "crop": "none", "interpolation": "bilinear", "grayscale": True,
                       "scale": [0.0, 1.0]},
        weights={"source": "none"},
    )
