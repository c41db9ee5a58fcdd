"""The DLILP study's image loading (jusiro/DLILP@2c9d3011a04de994041ed05d15135d1e873c04b2,
cxrvlms/pretraining/data/transforms.py `load_image` + `norm_image`, used by `LoadImage(size=(s, s), canvas=True)`).

It reads the file itself (DICOM through pydicom, JPEG through PIL's draft mode), so it is a file-level loader:
`load_dlilp(content, path, ...)` takes the file's bytes, not a decoded RGB image. Step by step as the authors wrote it:
DICOM as float, min-max to [0, 255] when outside that range, optionally inverted (255 - x: their VinDr rule); other
files through PIL `draft('L', ...)` and the first channel; /255; a square image resized to s x s, any other the long
side to s (integer truncation) and zero-padded right and bottom; a bilinear tensor resize WITHOUT antialiasing (their
torchvision 0.15.2 default for tensors); repeated to 3 channels; Normalize(0.5, 0.5) when `norm`. Computed in float64
as theirs is (numpy float), returned as float32.

Two differences, both about recognising inputs, not about pixels: a DICOM is recognised by its "DICM" magic (or a
.dcm/.dicom suffix), not by "dcm" anywhere in the path; inversion is the dataset registry's `dicom: {invert: true}`,
not "VinDr" in the path.
"""

from __future__ import annotations

import functools
import io
from pathlib import PurePath

import numpy as np
import torch

LOADER = "dlilp"


def is_dicom(content: bytes, path: str) -> bool:
    return content[128:132] == b"DICM" or PurePath(str(path)).suffix.lower() in (".dcm", ".dicom")


def _read_array(content: bytes, path: str, size: int, invert: bool) -> np.ndarray:
    if is_dicom(content, path):
        import pydicom

        img = np.array(pydicom.dcmread(io.BytesIO(content)).pixel_array, dtype=float)
        if np.max(img) > 255 or np.min(img) < 0:
            img = (img - np.min(img)) / (np.max(img - np.min(img)) / 255.0)
        if invert:  # the authors invert VinDr's DICOMs only (their rule sits inside the DICOM branch)
            img = -img + 255
        return img
    from PIL import Image

    image = Image.open(io.BytesIO(content))
    scale = max(image.size) / size
    image.draft("L", (image.size[0] / scale, image.size[1] // scale))  # their mixed / and //, kept
    return np.asarray(image, dtype=float)


def load_dlilp(content: bytes, path: str, *, size: int, norm: bool, invert: bool = False) -> torch.Tensor:
    """(3, size, size) float32: the authors' load_image(path, (size, size), canvas=True) then norm_image(img, norm)."""
    from torchvision.transforms import Normalize, Resize

    img = _read_array(content, path, size, invert)
    if img.ndim > 2 and img.shape[-1] < 5:
        img = img[:, :, 0]
    img = img / 255.0
    tensor = torch.from_numpy(np.ascontiguousarray(img)[None])  # float64, as torch.tensor(numpy float) is
    if tensor.shape[-1] == tensor.shape[-2]:
        tensor = Resize((size, size), antialias=False)(tensor)
    else:
        scale = max(tensor.shape[-2:]) / size
        tensor = Resize((int(tensor.shape[-2] / scale), int(tensor.shape[-1] / scale)), antialias=False)(tensor)
        tensor = torch.nn.functional.pad(tensor, (0, size - tensor.shape[-1], 0, size - tensor.shape[-2], 0, 0))
    tensor = tensor.repeat(3, 1, 1)
    if norm:
        tensor = Normalize(mean=[0.5] * 3, std=[0.5] * 3)(tensor)
    return tensor.float()


def study_picture(content: bytes, path: str, invert: bool = False):
    """The image the loader sees, at full size as 8-bit RGB, for drawing on (the overlay probes): a DICOM's pixels
    after the authors' min-max and inversion, rounded; any other file fully decoded. Drawn on, it goes back through
    the loader as a lossless PNG (`overlay_input`)."""
    from PIL import Image

    if is_dicom(content, path):
        img = _read_array(content, path, 1, invert)
        img = img[:, :, 0] if img.ndim > 2 and img.shape[-1] < 5 else img
        return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    from medprobe.imageio import rgb_from_source

    return rgb_from_source(content)


def overlay_input(image) -> tuple[bytes, str]:
    """(PNG bytes, a .png name) of a drawn-on picture, for the loader (a PNG is read without draft scaling)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "overlay.png"


def _load(content: bytes, path: str, invert: bool = False, *, size: int, norm: bool) -> torch.Tensor:
    return load_dlilp(content, path, size=size, norm=norm, invert=invert)


def dlilp_loader(size: int, norm: bool):
    """`load(content, path, invert) -> (3, size, size)`, picklable (DataLoader workers may be spawned)."""
    return functools.partial(_load, size=int(size), norm=bool(norm))


def describe(size: int, norm: bool) -> dict:
    """What the HDF5 attrs say about this preprocessing."""
    described = {"loader": LOADER, "size": int(size), "norm": bool(norm), "crop": "pad", "interpolation": "bilinear",
                 "antialias": False}
    if norm:
        described.update(mean=[0.5] * 3, std=[0.5] * 3)
    return described
