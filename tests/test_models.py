"""Each implemented loader family builds its real architecture offline (random weights), runs real images through
the official preprocessing, and matches its registry entry."""

import numpy as np
import pytest
import torch
from PIL import Image

from medprobe.errors import EncoderError
from medprobe.imageio import load_rgb
from medprobe.models import LOADERS, build_encoder
from medprobe.registry import load_models


@pytest.fixture(scope="module")
def registry(repo):
    return load_models(repo / "config" / "models.yaml")


def offline(spec):
    """The same entry with its weight-loading step swapped for a seeded random initialisation."""
    if spec["weights"]["source"] in ("none", "random"):
        return spec
    return {**spec, "weights": {**spec["weights"], "source": "random", "seed": 0}}


def assert_preprocessing_matches(encoder, spec):
    for key, expected in spec["preprocessing"].items():
        actual = encoder.preprocessing[key]
        if isinstance(expected, list):
            np.testing.assert_allclose(actual, expected, rtol=1e-6, err_msg=key)
        else:
            assert actual == expected, f"{key}: registry {expected!r}, loader {actual!r}"


def embed_two(encoder, demo_images):
    batch = torch.stack([encoder.transform(load_rgb(p)) for p in demo_images])
    with torch.inference_mode():
        return encoder.encode(batch)


@pytest.mark.parametrize("model_id", ["pixels", "resnet50_random", "clip_vit_b16_random", "resnet50", "vgg16"])
def test_loader_builds_the_registered_model(model_id, registry, demo_images):
    spec = offline(registry[model_id])
    encoder = build_encoder(model_id, spec)
    assert_preprocessing_matches(encoder, spec)
    out = embed_two(encoder, demo_images)
    assert out.shape == (2, spec["dim"]) and torch.isfinite(out).all()
    assert not torch.equal(out[0], out[1])
    assert encoder.feature_point == spec["feature_point"]


def test_pixels_feature_is_the_image(demo_images, registry):
    encoder = build_encoder("pixels", registry["pixels"])
    out = embed_two(encoder, demo_images)
    assert out.min() >= 0 and out.max() <= 1
    expected = np.asarray(load_rgb(demo_images[0]).convert("L").resize((32, 32), Image.Resampling.BILINEAR),
                          dtype=np.float32) / 255
    np.testing.assert_allclose(out[0].numpy(), expected.reshape(-1), atol=1e-6)


def test_random_weights_are_seeded(registry, demo_images):
    a = embed_two(build_encoder("resnet50_random", registry["resnet50_random"]), demo_images)
    b = embed_two(build_encoder("resnet50_random", registry["resnet50_random"]), demo_images)
    torch.testing.assert_close(a, b)
    other = {**registry["resnet50_random"], "weights": {"source": "random", "seed": 1}}
    assert not torch.allclose(a, embed_two(build_encoder("resnet50_random", other), demo_images))


def test_vit_l_16_feature_is_the_cls_token(registry, demo_images):
    spec = offline(registry["vit_l_16"])
    encoder = build_encoder("vit_l_16", spec)
    assert_preprocessing_matches(encoder, spec)
    assert embed_two(encoder, demo_images).shape == (2, 1024)


def test_missing_family_and_wrong_dim_are_clear_errors(registry):
    with pytest.raises(EncoderError, match="no loader for family 'llava'"):
        build_encoder("llava_med", registry["llava_med"])
    wrong = {**registry["pixels"], "dim": 4096}
    with pytest.raises(EncoderError, match="registry says dim 4096"):
        build_encoder("pixels", wrong)
    assert {"pixels", "timm", "open_clip", "torchvision"} <= set(LOADERS)
