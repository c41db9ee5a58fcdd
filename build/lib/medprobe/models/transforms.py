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
    """LLaVA's expand2square: centre the image on a square canvas filled with the normalisation mean, the colour
    truncated as LLaVA's process_images computes it, `tuple(int(x * 255) for x in image_mean)` (OpenAI CLIP's mean:
    122, 116, 104), and the offset floored."""

    def __init__(self, mean):
        self.fill = tuple(int(m * 255) for m in mean)

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
    """FLAIR's FLAIRModel.preprocess_image (jusiro/FLAIR@d6652d53389ff49e5f73efaccf4246e9de88d1a3,
    flair/modeling/model.py L232-263): pixels as float32 / 255 with no mean/std; new size (int(h / s), int(w / s))
    with s = max(h, w) / size (truncated, not rounded); the float tensor resized bilinearly (align_corners=False,
    antialiased as that commit's torchvision Resize(antialias=True) does; FLAIR's 2023 code ran without antialiasing,
    `antialias: false`); zero padding right and bottom to size x size."""

    def __init__(self, size: int, antialias: bool = True):
        self.size = size
        self.antialias = antialias

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / np.float32(255.0))
        pixels = pixels.permute(2, 0, 1).unsqueeze(0)
        height, width = pixels.shape[-2:]
        scale = max(height, width) / self.size
        new_size = (int(height / scale), int(width / scale))
        if new_size != (height, width):
            pixels = torch.nn.functional.interpolate(pixels, size=new_size, mode="bilinear", align_corners=False,
                                                     antialias=self.antialias)
        pixels = torch.nn.functional.pad(pixels, (0, self.size - new_size[1], 0, self.size - new_size[0]))
        return pixels[0].contiguous()

    def describe(self) -> dict[str, Any]:
        return {"size": self.size, "crop": "pad", "interpolation": "bilinear", "scale": [0.0, 1.0],
                "antialias": self.antialias}


class CenterCropFloor:
    """A centre crop whose offset is floored, as transformers' image processors crop ((h - size) // 2); torchvision's
    CenterCrop rounds it, which moves odd-margin crops by one pixel."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        if width < self.size or height < self.size:
            return T.CenterCrop(self.size)(image)  # (not reached after a shortest-side resize to `size`)
        left, top = (width - self.size) // 2, (height - self.size) // 2
        return image.crop((left, top, left + self.size, top + self.size))

    def describe(self) -> dict[str, Any]:
        return {"size": self.size, "crop": "center", "crop_offset": "floor"}


def build_transform(pre: Mapping[str, Any]):
    """The registry's preprocessing as a transform of a PIL RGB image."""
    crop = pre.get("crop", "center")
    if crop == "pad":
        return LongSideResizePad(int(pre["size"]), antialias=bool(pre.get("antialias", True)))
    steps = []
    if pre.get("pad_to_square"):
        steps.append(PadToSquare(pre["mean"]))
    interpolation = INTERPOLATION[pre.get("interpolation", "bicubic")]
    steps.append(T.Resize(int(pre.get("resize", pre["size"])), interpolation=interpolation))
    if crop == "center":
        floor = pre.get("crop_offset", "round") == "floor"
        steps.append(CenterCropFloor(int(pre["size"])) if floor else T.CenterCrop(int(pre["size"])))
    steps.append(T.ToTensor())
    if "mean" in pre:
        steps.append(T.Normalize(pre["mean"], pre["std"]))
    return T.Compose(steps)
