import numpy as np
from PIL import Image

from medprobe.imageio import load_rgb, to_rgb


def test_gray_is_replicated():
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    rgb = np.asarray(to_rgb(gray))
    assert rgb.shape == (16, 16, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == np.asarray(gray)).all()


def test_16_bit_is_rescaled_from_its_own_range(tmp_path):
    values = np.linspace(1000, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)  # a 12-bit image in 16 bits
    path = tmp_path / "ct.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(load_rgb(path))
    assert rgb.dtype == np.uint8 and rgb.min() == 0 and rgb.max() == 255
    assert rgb[0, 0, 0] < rgb[32, 32, 0] < rgb[-1, -1, 0]


def test_constant_16_bit_image_becomes_black():
    flat = Image.fromarray(np.full((8, 8), 700, dtype=np.uint16))
    assert np.asarray(to_rgb(flat)).max() == 0


def test_alpha_is_composited_over_black():
    rgba = Image.new("RGBA", (4, 4), (200, 100, 50, 0))
    assert np.asarray(to_rgb(rgba)).max() == 0
    opaque = Image.new("RGBA", (4, 4), (200, 100, 50, 255))
    assert tuple(np.asarray(to_rgb(opaque))[0, 0]) == (200, 100, 50)


def test_cmyk_and_palette_become_rgb():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    assert to_rgb(cmyk).mode == "RGB" and tuple(np.asarray(to_rgb(cmyk))[0, 0]) == (255, 0, 0)
    palette = Image.new("RGB", (4, 4), (10, 200, 30)).convert("P")
    assert to_rgb(palette).mode == "RGB"
