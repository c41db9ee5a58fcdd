import re
from pathlib import Path

import numpy as np
import torch
import pandas as pd
import pytest

from conftest import copy_demo_subset
from medprobe import embed as embed_module
from medprobe.embed import embed_dataset, plan_threads
from medprobe.errors import EncoderError
from medprobe.manifest import make_dataset_manifest
from medprobe.registry import load_models
from medprobe.store import partial_path, read_embeddings

SPEC = {"adapter": "imagefolder", "classes": ["glioma_tumor", "no_tumor", "pituitary_tumor"]}


@pytest.fixture
def manifest(tmp_path):
    root = copy_demo_subset(tmp_path / "data", per_class=4)
    out = tmp_path / "manifest.tsv"
    make_dataset_manifest("tiny", SPEC, root, out, tmp_path / "manifest.issues.tsv")
    return out


def test_embedding_file_follows_the_schema(manifest, tmp_path, repo):
    models = load_models(repo / "config" / "models.yaml")
    out = embed_dataset("tiny", "pixels", {**models["pixels"], "batch_size": 5}, manifest, tmp_path / "e.h5",
                        class_names=SPEC["classes"])
    emb = read_embeddings(out)
    table = pd.read_csv(manifest, sep="\t")
    assert emb.features.shape == (12, 1024) and np.isfinite(emb.features).all()
    assert list(emb.sample_id) == table.sample_id.tolist() and emb.labels.tolist() == table.label.tolist()
    for key in ("medprobe_version", "model_id", "feature_point", "weights", "preprocessing", "dataset_id",
                "manifest_sha256", "class_names", "torch_version", "device", "dtype", "created_utc", "n_failed"):
        assert key in emb.attrs, key
    assert emb.attrs["class_names"] == SPEC["classes"] and emb.attrs["n_failed"] == 0
    assert emb.attrs["preprocessing"]["size"] == 32


def test_interrupted_extraction_resumes_to_the_same_file(manifest, tmp_path, repo, monkeypatch):
    spec = {**load_models(repo / "config" / "models.yaml")["resnet50_random"], "batch_size": 4}
    clean = read_embeddings(embed_dataset("tiny", "resnet50_random", spec, manifest, tmp_path / "clean.h5",
                                          class_names=SPEC["classes"]))
    target = tmp_path / "resumed.h5"
    original = embed_module.EmbeddingWriter.write
    calls = {"n": 0}

    def dies_on_second_batch(self, start, features, failed_ids=()):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return original(self, start, features, failed_ids)

    monkeypatch.setattr(embed_module.EmbeddingWriter, "write", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset("tiny", "resnet50_random", spec, manifest, target, class_names=SPEC["classes"])
    assert not target.exists() and partial_path(target).exists()
    monkeypatch.setattr(embed_module.EmbeddingWriter, "write", original)
    resumed = read_embeddings(embed_dataset("tiny", "resnet50_random", spec, manifest, target,
                                            class_names=SPEC["classes"]))
    np.testing.assert_array_equal(resumed.features, clean.features)


def test_failed_images_are_nan_rows_and_counted(manifest, tmp_path, repo, monkeypatch):
    table = pd.read_csv(manifest, sep="\t")
    original = embed_module.rgb_from_source
    broken = {"n": 0}

    def fails_on_the_fourth(content, draft=None):  # an image the manifest decoded, that preprocessing then fails
        image = original(content, draft)
        broken["n"] += 1
        if broken["n"] % 12 == 4:
            raise OSError("simulated decoder failure")
        return image

    monkeypatch.setattr(embed_module, "rgb_from_source", fails_on_the_fourth)
    spec = load_models(repo / "config" / "models.yaml")["pixels"]
    with pytest.raises(EncoderError, match="1 image"):
        embed_dataset("tiny", "pixels", spec, manifest, tmp_path / "e.h5", class_names=SPEC["classes"])
    assert not (tmp_path / "e.h5").exists()
    out = embed_dataset("tiny", "pixels", spec, manifest, tmp_path / "f.h5", class_names=SPEC["classes"],
                        max_failed=1)
    emb = read_embeddings(out)
    assert emb.attrs["n_failed"] == 1 and emb.attrs["failed"] == [table.sample_id.iloc[3]]
    assert np.isnan(emb.features[3]).all() and emb.valid_rows().sum() == 11


@pytest.mark.parametrize("change", ["replaced", "truncated", "deleted"])
def test_an_image_changed_since_the_manifest_stops_embed(manifest, tmp_path, repo, change):
    from conftest import save_image
    from medprobe.errors import DatasetError

    table = pd.read_csv(manifest, sep="\t")
    target = table.path.iloc[5]
    if change == "replaced":   # another valid image under the same name
        save_image(Path(target), seed=7, size=(64, 64), fmt="JPEG" if target.lower().endswith(".jpg") else None)
    elif change == "truncated":
        with open(target, "r+b") as handle:
            handle.truncate(100)
    else:
        Path(target).unlink()
    spec = load_models(repo / "config" / "models.yaml")["pixels"]
    why = "the file no longer exists" if change == "deleted" else "its sha256 is now"
    with pytest.raises(DatasetError, match=rf"1 image\(s\) changed since the manifest was built: {re.escape(target)}: {why}.*"
                                           rf"Nothing was published.*--forcerun manifest"):
        embed_dataset("tiny", "pixels", {**spec, "batch_size": 4}, manifest, tmp_path / "e.h5",
                      class_names=SPEC["classes"])
    assert not (tmp_path / "e.h5").exists()


def test_thread_plan():
    import torch

    assert plan_threads(4, torch.device("cpu"), neural=True) == (4, 1)
    assert plan_threads(4, torch.device("cpu"), neural=False) == (4, 4)
    assert plan_threads(8, torch.device("cuda"), neural=True) == (8, 8)
    assert plan_threads(1, torch.device("cpu"), neural=True) == (1, 0)


def test_amp_policy(repo, monkeypatch):
    import torch

    from medprobe import embed as embed_mod
    from medprobe.models import build_encoder

    registry = load_models(repo / "config" / "models.yaml")
    cnn = build_encoder("resnet50_random", registry["resnet50_random"])
    vit = build_encoder("clip_vit_b16_random", registry["clip_vit_b16_random"])
    pixels = build_encoder("pixels", registry["pixels"])
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert embed_mod.use_amp("auto", gpu, vit) and embed_mod.use_amp("bf16", cpu, vit)
    assert not embed_mod.use_amp("off", gpu, cnn) and not embed_mod.use_amp("bf16", gpu, pixels)
    monkeypatch.setattr(embed_mod, "cpu_has_native_bf16", lambda: True)
    assert embed_mod.use_amp("auto", cpu, cnn) and not embed_mod.use_amp("auto", cpu, vit)
    monkeypatch.setattr(embed_mod, "cpu_has_native_bf16", lambda: False)
    assert not embed_mod.use_amp("auto", cpu, cnn)


def test_embed_makes_no_network_access(manifest, tmp_path, repo, monkeypatch):
    """A pretrained torchvision model with a local checkpoint: fetch (local), then embed with sockets disabled."""
    import socket

    import torch
    import torchvision

    from medprobe.weights import fetch_weights

    spec = load_models(repo / "config" / "models.yaml")["resnet50"]
    checkpoint = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), checkpoint)
    fetch_weights("resnet50", spec, tmp_path / "resnet50.json", local_path=checkpoint)

    def no_network(*args, **kwargs):
        raise AssertionError("embed tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    out = embed_dataset("tiny", "resnet50", {**spec, "batch_size": 6}, manifest, tmp_path / "e.h5",
                        weights_json=tmp_path / "resnet50.json", class_names=SPEC["classes"])
    emb = read_embeddings(out)
    assert emb.features.shape == (12, 2048)
    assert emb.attrs["weights"]["files"]["checkpoint"]["sha256"] and emb.attrs["weights"]["tower_sha256"]


def test_overlays_reach_a_file_level_loader_through_its_own_pixels(tmp_path):
    """The DLILP study's loader reads files itself; an overlay probe draws on the pixels it reads (a DICOM after the
    authors' min-max and inversion), then feeds the drawing back through it as a lossless PNG."""
    from functools import partial

    from PIL import ImageDraw
    from test_imageio import write_dicom

    from medprobe.embed import ManifestImages
    from medprobe.models.cxr_preprocess import load_dlilp

    values = np.linspace(100, 3000, 40 * 56).reshape(40, 56).astype(np.uint16)
    path = write_dicom(tmp_path / "x.dcm", values)
    load = partial(lambda content, name, invert: load_dlilp(content, name, size=32, norm=True, invert=invert))

    def untouched(row, image):
        return image

    def marked(row, image):
        image = image.copy()
        ImageDraw.Draw(image).rectangle((0, 0, 20, 20), fill=(255, 255, 255))
        return image

    for invert in (False, True):
        plain = ManifestImages([str(path)], None, load=load, invert=invert)[0][1]
        same = ManifestImages([str(path)], None, load=load, invert=invert, picture=untouched)[0][1]
        drawn = ManifestImages([str(path)], None, load=load, invert=invert, picture=marked)[0][1]
        assert plain.shape == same.shape == drawn.shape == (3, 32, 32)
        assert (same - plain).abs().max() <= 1.0 / 255 * 2  # 8-bit rounding of the drawn-on copy only
        assert (drawn[:, :5, :5] - 1.0).abs().max() < 1e-6  # the white square, normalised to 1
        assert (drawn[:, 20:, 20:] - same[:, 20:, 20:]).abs().max() < 1e-6
    upright = ManifestImages([str(path)], None, load=load, invert=False)[0][1]
    inverted = ManifestImages([str(path)], None, load=load, invert=True)[0][1]
    image = slice(0, int(40 / (56 / 32)))  # rows above the zero padding
    assert torch.allclose(upright[:, image] + inverted[:, image], torch.zeros(3, 22, 32), atol=1e-6)  # 255 - x
