"""Reading images: the one place where every image mode becomes an 8-bit RGB picture.

The conversion, documented once:
- RGB: unchanged.  L (8-bit gray): replicated to three channels.  1 (bilevel): 0/255 gray, then replicated.
- I;16 / I;16B / I / F (16-bit, 32-bit integer or float gray): linearly rescaled from the image's own minimum..maximum
  to 0..255 (a constant image becomes 0), then replicated. Medical 16-bit PNGs often use 10-12 of the 16 bits;
  a fixed /257 would leave them nearly black.
- RGBA / LA / PA, and P with a transparency entry: composited over black, then RGB.
- P (palette), CMYK, YCbCr, LAB, HSV: Pillow's convert("RGB").
EXIF orientation is not applied: pixels are used as stored.

DICOM (recognised by the "DICM" magic at byte 128, whatever the file's suffix; read with pydicom): the stored
pixel_array as float; when it leaves 0..255 it is rescaled as the DLILP authors do, (x - min) / (max(x - min) / 255)
(no modality or VOI LUT), then rounded to 8-bit gray; MONOCHROME1 (white = low values) is inverted so that the picture
displays like every other X-ray. Compressed transfer syntaxes need pydicom's optional decoders (pylibjpeg, gdcm).

JPEG draft mode (optional): libjpeg can decode at 1/2, 1/4 or 1/8 scale for a fraction of the cost. `load_rgb(path,
draft=n)` uses the largest reduction that still leaves both sides >= n pixels; the embed rule asks for twice the
model's input size, so the antialiased resize that follows still sees at least 2x oversampling.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

DICOM_MAGIC = b"DICM"
DICOM_MAGIC_OFFSET = 128
HIGH_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in HIGH_DEPTH_MODES:
        values = np.asarray(image).astype(np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L").convert("RGB")
    if mode in ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "1":
        return image.convert("L").convert("RGB")
    return image.convert("RGB")


def is_dicom(data: bytes) -> bool:
    """True for a DICOM Part 10 file: the 128-byte preamble followed by "DICM"."""
    return data[DICOM_MAGIC_OFFSET:DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)] == DICOM_MAGIC


def dicom_to_8bit(pixels: np.ndarray, photometric: str = "MONOCHROME2") -> np.ndarray:
    """The DLILP authors' intensity handling, rounded to uint8; MONOCHROME1 inverted for display."""
    values = np.asarray(pixels, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high > 255 or low < 0:
        span = float((values - low).max())
        values = (values - low) / (span / 255.0) if span > 0 else np.zeros_like(values)
    values = np.clip(np.round(values), 0, 255)
    if photometric == "MONOCHROME1":
        values = 255 - values
    return values.astype(np.uint8)


def decode_dicom(data: bytes) -> Image.Image:
    """A DICOM file's first frame as an 8-bit picture (L, or RGB for colour DICOM); format "DICOM", and the
    photometric interpretation in info["photometric"]."""
    import pydicom  # only DICOM input needs it

    dataset = pydicom.dcmread(io.BytesIO(data))
    pixels = dataset.pixel_array
    samples = int(getattr(dataset, "SamplesPerPixel", 1))
    if int(getattr(dataset, "NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    if samples == 1:
        image = Image.fromarray(dicom_to_8bit(pixels, photometric))  # 2-d uint8: mode L
    else:  # colour DICOM: decoded to RGB by pydicom (YBR converted), first three samples
        image = Image.fromarray(dicom_to_8bit(pixels[..., :3]))  # (h, w, 3) uint8: mode RGB
    image.format = "DICOM"
    image.info["photometric"] = photometric
    return image


def decode(data: bytes) -> Image.Image:
    """Fully decode image bytes (raises on truncated or unidentifiable data); DICOM via decode_dicom."""
    if is_dicom(data):
        return decode_dicom(data)
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@functools.lru_cache(maxsize=4)
def _npz_array(file: str, key: str) -> np.ndarray:
    with np.load(file) as archive:
        return archive[key]


def npz_member(path: str) -> np.ndarray:
    """The image at "<file.npz>::<key>/<row>" (each array is read once per process and kept)."""
    file, member = path.split("::", 1)
    key, row = member.rsplit("/", 1)
    return _npz_array(file, key)[int(row)]


def read_source(path: str | Path) -> tuple[str, bytes | np.ndarray]:
    """The sha256 the manifest records for a sample, and its content: the file's bytes, or for an image inside a
    NumPy archive its array (hashed over shape, dtype and array bytes). Raises FileNotFoundError when it is gone."""
    if "::" in str(path):
        array = npz_member(str(path))
        return hashlib.sha256(f"{array.shape}{array.dtype}".encode() + array.tobytes()).hexdigest(), array
    data = Path(path).read_bytes()
    return hashlib.sha256(data).hexdigest(), data


def rgb_from_source(content: bytes | np.ndarray, draft: int | None = None) -> Image.Image:
    """What load_rgb returns, from the content read_source returned (so the bytes hashed are the bytes decoded)."""
    if isinstance(content, np.ndarray):
        return to_rgb(Image.fromarray(content))
    if is_dicom(content):
        return to_rgb(decode_dicom(content))
    image = Image.open(io.BytesIO(content))
    if draft and image.format == "JPEG":
        image.draft(image.mode, (draft, draft))
    image.load()
    return to_rgb(image)


def load_rgb(path: str | Path, draft: int | None = None) -> Image.Image:
    """Open, fully decode and convert one image to 8-bit RGB (JPEGs at a reduced scale >= `draft` px).
    `path` may also name an image inside a NumPy archive: "<file.npz>::<key>/<row>"."""
    if "::" in str(path):
        return to_rgb(Image.fromarray(npz_member(str(path))))
    with open(path, "rb") as handle:
        if is_dicom(handle.read(DICOM_MAGIC_OFFSET + len(DICOM_MAGIC))):
            return to_rgb(decode_dicom(Path(path).read_bytes()))
    image = Image.open(path)
    if draft and image.format == "JPEG":
        image.draft(image.mode, (draft, draft))
    image.load()  # reads all pixels and, for single-frame files, closes the file
    return to_rgb(image)
