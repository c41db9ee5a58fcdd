"""Preprocessing built from a registry entry, for the models whose official transform is written in their model
card rather than shipped by a library (UNI, CONCH, CXR-CLIP, FLAIR, the LLaVA family, LLM2CLIP).

Every transform here can describe itself, so the HDF5 attrs record exactly what ran.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

INTERPOLATION = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
                 "bicubic": InterpolationMode.BICUBIC}


class PadToSquare:
    """LLaVA's expand2square: centre the image on a square canvas filled with the normalisation mean."""

    def __init__(self, mean):
        self.fill = tuple(int(round(255 * m)) for m in mean)

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        if width == height:
            return image
        side = max(width, height)
        canvas = Image.new("RGB", (side, side), self.fill)
        canvas.paste(image, ((side - width) // 2, (side - height) // 2))
        return canvas

    def describe(self) -> dict[str, Any]:
        return {"pad_to_square": True, "pad_fill": list(self.fill)}


class LongSideResizePad:
    """FLAIR: scale the long side to `size` (bilinear, antialiased), zero-pad right and bottom to size x size,
    pixels in [0, 1] with no mean/std."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        width, height = image.size
        scale = self.size / max(width, height)
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = image.resize(new_size, Image.Resampling.BILINEAR)
        canvas = np.zeros((self.size, self.size, 3), dtype=np.float32)
        canvas[: new_size[1], : new_size[0]] = np.asarray(resized, dtype=np.float32) / 255.0
        return torch.from_numpy(canvas).permute(2, 0, 1).contiguous()

    def describe(self) -> dict[str, Any]:
        return {"size": self.size, "crop": "pad", "interpolation": "bilinear", "scale": [0.0, 1.0]}


def build_transform(pre: Mapping[str, Any]):
    """The registry's preprocessing as a transform of a PIL RGB image."""
    crop = pre.get("crop", "center")
    if crop == "pad":
        return LongSideResizePad(int(pre["size"]))
    steps = []
    if pre.get("pad_to_square"):
        steps.append(PadToSquare(pre["mean"]))
    interpolation = INTERPOLATION[pre.get("interpolation", "bicubic")]
    steps.append(T.Resize(int(pre.get("resize", pre["size"])), interpolation=interpolation))
    if crop == "center":
        steps.append(T.CenterCrop(int(pre["size"])))
    steps.append(T.ToTensor())
    if "mean" in pre:
        steps.append(T.Normalize(pre["mean"], pre["std"]))
    return T.Compose(steps)
