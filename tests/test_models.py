"""Loaders with seeded random weights, offline: the other feature points, shared towers, baselines, preprocessing
details, clear errors. (Every registry entry's default feature point, preprocessing and weights are checked against
its official implementation in tests/test_official.py.)"""

import numpy as np
import pytest
import torch
from PIL import Image

from medprobe.errors import EncoderError
from medprobe.imageio import load_rgb
from medprobe.models import LOADERS, build_encoder
from medprobe.registry import effective_model, load_models


@pytest.fixture(scope="module")
def registry(repo):
    return load_models(repo / "config" / "models.yaml")


def offline(spec):
    """The same entry with its weight-loading step swapped for a seeded random initialisation."""
    if spec["weights"]["source"] in ("none", "random"):
        return spec
    return {**spec, "weights": {**spec["weights"], "source": "random", "seed": 0}}


def embed_two(encoder, demo_images):
    batch = torch.stack([encoder.transform(load_rgb(p)) for p in demo_images])
    with torch.inference_mode():
        return encoder.encode(batch)


@pytest.mark.parametrize("model_id,point,dim", [("llava", "tower_cls", 1024), ("llava_med", "patch_mean", 1024),
                                                ("flair", "backbone", 2048), ("cxr_clip", "backbone", 768)])
def test_other_feature_points(model_id, point, dim, registry, demo_images):
    spec = effective_model(model_id, offline(registry[model_id]), point)
    assert spec["dim"] == dim
    assert embed_two(build_encoder(model_id, spec), demo_images).shape == (2, dim)


def test_llava_feature_points_share_one_tower(registry, demo_images):
    spec = offline(registry["llava"])
    cls = embed_two(build_encoder("llava", effective_model("llava", spec, "tower_cls")), demo_images)
    again = embed_two(build_encoder("llava_med", effective_model("llava_med", offline(registry["llava_med"]),
                                                                   "tower_cls")), demo_images)
    torch.testing.assert_close(cls, again)  # same tower config and seed: same features


def test_pixels_feature_is_the_image(demo_images, registry):
    encoder = build_encoder("pixels", registry["pixels"])
    out = embed_two(encoder, demo_images)
    assert out.min() >= 0 and out.max() <= 1
    expected = np.asarray(load_rgb(demo_images[0]).convert("L").resize((32, 32), Image.Resampling.BILINEAR),
                          dtype=np.float32) / 255
    np.testing.assert_allclose(out[0].numpy(), expected.reshape(-1), atol=1e-6)


def test_flair_pads_long_side_to_512_without_normalisation(registry):
    encoder = build_encoder("flair", offline(registry["flair"]))
    image = Image.new("RGB", (1000, 500), (255, 128, 0))
    x = encoder.transform(image)
    assert x.shape == (3, 512, 512)
    assert torch.allclose(x[0, :256], torch.ones(256, 512)) and x[:, 256:].abs().max() == 0  # image on top, zeros below
    assert 0 <= x.min() and x.max() <= 1 + 1e-6  # (the antialiased float resize rounds around 1)


def test_llava_pads_to_square_with_the_mean_colour(registry):
    encoder = build_encoder("llava", offline(registry["llava"]))
    pad = encoder.transform.transforms[0]
    square = pad(Image.new("RGB", (400, 200), (0, 0, 0)))
    assert square.size == (400, 400)
    assert square.getpixel((0, 0)) == (122, 116, 104)  # LLaVA: tuple(int(x * 255) for x in image_mean)
    assert square.getpixel((200, 200)) == (0, 0, 0)


def test_random_weights_are_seeded(registry, demo_images):
    a = embed_two(build_encoder("resnet50_random", registry["resnet50_random"]), demo_images)
    b = embed_two(build_encoder("resnet50_random", registry["resnet50_random"]), demo_images)
    torch.testing.assert_close(a, b)
    other = {**registry["resnet50_random"], "weights": {"source": "random", "seed": 1}}
    assert not torch.allclose(a, embed_two(build_encoder("resnet50_random", other), demo_images))


def test_missing_weights_and_wrong_dim_are_clear_errors(registry):
    with pytest.raises(EncoderError, match="run fetch_weights first"):
        build_encoder("clip_vit_b16", registry["clip_vit_b16"])
    wrong = {**registry["pixels"], "dim": 4096}
    with pytest.raises(EncoderError, match="registry says dim 4096"):
        build_encoder("pixels", wrong)
    assert {registry[m]["family"] for m in registry} <= set(LOADERS)
