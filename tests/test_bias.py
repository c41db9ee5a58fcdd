"""The typographic probe: rendering, configuration errors, and known answers from encoders built to read, or to be
blind to, the text region."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import copy_demo_subset
from medprobe.embed import extract_embeddings
from medprobe.errors import RegistryError
from medprobe.manifest import make_dataset_manifest, read_manifest
from medprobe.models.base import Encoder
from medprobe.overlay import OverlayStyle, check_fits, overlay_plan, render, text_box
from medprobe.split import split_dataset
from medprobe.store import read_embeddings
from medprobe.embed_overlay import embed_overlays
from medprobe.typographic import run_bias_audit

CLASSES = ["glioma_tumor", "no_tumor", "pituitary_tumor"]
BIAS = {"n_images": 24, "word_sets": {"breast_axilla": ["BREAST", "AXILLA"], "left_right": ["LEFT", "RIGHT"]}}


def test_the_word_lands_where_the_style_says():
    image = Image.new("RGB", (300, 200), (0, 0, 0))
    for position in ("top-left", "bottom-right", "center"):
        style = OverlayStyle(position=position)
        drawn = np.asarray(render(image, "AXILLA", style)).max(axis=2)
        left, top, right, bottom = text_box("AXILLA", style, 300, 200)
        rows, cols = np.nonzero(drawn > 128)
        assert rows.min() >= top - 1 and rows.max() <= bottom and cols.min() >= left - 1 and cols.max() <= right
        assert bottom - top == pytest.approx(0.08 * 200, abs=2) or position == "center"
    half = np.asarray(render(image, "AXILLA", OverlayStyle(opacity=0.5, colour=(200, 0, 0))))
    assert half[..., 0].max() == pytest.approx(100, abs=2) and half[..., 1].max() == 0


def test_bad_overlay_settings_name_the_key():
    with pytest.raises(RegistryError, match=r"bias.font '/no/such.ttf': no such font file"):
        overlay_plan({"font": "/no/such.ttf"}, CLASSES)
    with pytest.raises(RegistryError, match=r"bias.word_sets.mine \[\]: a word set needs at least two"):
        overlay_plan({"word_sets": {"mine": []}}, CLASSES)
    with pytest.raises(RegistryError, match=r"bias.position 'middle'"):
        overlay_plan({"position": "middle"}, CLASSES)
    plan = overlay_plan({"size": 0.1, "word_sets": {"mine": ["ABDOMEN", "MEDIASTINUM"]}}, CLASSES)
    with pytest.raises(RegistryError, match=r"bias.word_sets.mine: the word 'MEDIASTINUM' does not fit a 120x300 "
                                            r"image of dataset 'd' at bias.size 0.1.*Lower bias.size"):
        check_fits(plan, [(512, 512), (256, 256), (120, 300)], dataset_id="d")
    fitted = check_fits(overlay_plan({"size": 0.1}, CLASSES), [(512, 512), (256, 256)], dataset_id="d")
    assert fitted.set_sizes["left_right"] == 0.1 and 0.04 < fitted.set_sizes["class_names"] < 0.1
    assert overlay_plan({}, CLASSES).word_sets["class_names"] == ["GLIOMA TUMOR", "NO TUMOR", "PITUITARY TUMOR"]


class Columns:
    """A picklable forward: a coarse view of the image content, plus (reads_text) the top strip where the words are
    written, weighted to dominate; text-blind versions black the strip out before looking."""

    def __init__(self, reads_text: bool):
        self.reads_text = reads_text

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        strip = batch[:, :, :20, :]
        masked = batch.clone()
        masked[:, :, :20, :] = 0.0
        content = F.adaptive_avg_pool2d(masked, 4).flatten(1)
        if not self.reads_text:
            return content
        return torch.cat([content, 10.0 * F.adaptive_avg_pool2d(strip, (5, 40)).flatten(1)], dim=1)


def to_tensor_96(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.resize((96, 96), Image.BILINEAR), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def toy_encoder(reads_text: bool) -> Encoder:
    dim = 48 + (3 * 5 * 40 if reads_text else 0)
    return Encoder(model_id="reader" if reads_text else "blind", transform=to_tensor_96, forward=Columns(reads_text),
                   dim=dim, feature_point="toy", preprocessing={"size": 96}, weights={"source": "none"})


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory):
    base = tmp_path_factory.mktemp("typographic")
    root = copy_demo_subset(base / "data", per_class=20)
    manifest = base / "manifest.tsv"
    make_dataset_manifest("tiny", {"adapter": "imagefolder", "classes": CLASSES}, root, manifest,
                          base / "manifest.issues.tsv")
    split = base / "split.tsv"
    split_dataset(manifest, split, base / "split.issues.tsv", dataset_id="tiny", holdout_fraction=0.4)
    return base, manifest, split


@pytest.mark.parametrize("reads_text", [True, False])
def test_known_answers_from_a_text_reader_and_a_text_blind_encoder(demo_dataset, monkeypatch, reads_text):
    from medprobe import models

    base, manifest, split = demo_dataset
    encoder = toy_encoder(reads_text)
    monkeypatch.setattr(models, "build_encoder", lambda *args, **kwargs: encoder)
    clean = extract_embeddings(read_manifest(manifest), encoder, base / f"{encoder.model_id}.h5", dataset_id="tiny",
                               class_names=CLASSES, manifest_sha256="x", batch_size=16)
    overlays = embed_overlays("tiny", encoder.model_id, {"batch_size": 16}, manifest, split,
                              base / f"{encoder.model_id}.overlays.h5", BIAS, class_names=CLASSES)
    emb = read_embeddings(overlays)
    assert len(emb.features) == 24 * (2 + 2 + 3) and emb.attrs["overlay"]["n_images"] == 24
    assert set(emb.columns["word"]) == {"BREAST", "AXILLA", "LEFT", "RIGHT", "GLIOMA TUMOR", "NO TUMOR",
                                        "PITUITARY TUMOR"}
    table = run_bias_audit(clean, overlays, manifest, base / f"{encoder.model_id}.tsv", dataset_id="tiny",
                           model_id=encoder.model_id, n_boot=50)
    assert set(table.probe) == {"typographic", "nuisance"}
    value = {(r.attribute, r.metric): r.value for r in table.itertuples()}
    if reads_text:
        assert all(value[(s, "text_decodability")] > 0.9 for s in ("breast_axilla", "left_right", "class_names"))
        assert all(value[(s, "text_effect_size")] > 1.0 for s in ("breast_axilla", "left_right", "class_names"))
        # the probe learnt the word: with the next class's name written, it is nearly always wrong
        assert value[("class_names", "shortcut_permuted_accuracy")] < 0.15
        assert value[("class_names", "shortcut_drop")] > 25.0
    else:
        assert all(abs(value[(s, "text_decodability")]) < 1e-9 for s in ("breast_axilla", "left_right",
                                                                         "class_names"))
        assert all(value[(s, "text_effect_size")] == 0.0 for s in ("breast_axilla", "left_right", "class_names"))
        assert abs(value[("class_names", "shortcut_drop")]) < 1e-9
    assert list(pd.read_csv(base / f"{encoder.model_id}.tsv", sep="\t").columns) == [
        "dataset", "model", "probe", "attribute", "metric", "value", "spread", "n"]


def test_nuisance_audit_known_answers():
    """Neighbourhoods built to follow a nuisance give dominance above 1; built to follow the class, below."""
    from medprobe.nuisance import nuisance_audit

    rng = np.random.default_rng(0)
    n = 240
    labels = rng.integers(0, 3, n)
    site = rng.integers(0, 4, n).astype(str)
    eye = np.eye(4)
    by_site = np.hstack([8 * eye[site.astype(int)], 0.5 * np.eye(3)[labels], rng.normal(size=(n, 10))])
    by_class = np.hstack([0.5 * eye[site.astype(int)], 8 * np.eye(3)[labels], rng.normal(size=(n, 10))])
    for features, dominant in ((by_site, True), (by_class, False)):
        table = nuisance_audit(features, labels, {"site": site}, k=10)
        value = dict(zip(table.metric, table.value))
        assert value["knn_chance"] == pytest.approx(0.25, abs=0.02) and value["class_knn_chance"] == \
            pytest.approx(1 / 3, abs=0.02)
        if dominant:
            assert value["dominance"] > 2 and value["knn_lift"] > 0.9 and value["decodability"] > 0.9
        else:
            assert value["dominance"] < 0.2 and value["class_knn_lift"] > 0.9


def test_nuisance_attributes_from_the_manifest(tmp_path):
    from conftest import save_image
    from medprobe.manifest import build_manifest
    from medprobe.nuisance import nuisance_attributes

    for i in range(8):
        save_image(tmp_path / "a" / ("scanner1" if i % 2 else "scanner2") / f"{i}.png", seed=i,
                   size=(40 + 10 * (i % 4), 32))
        save_image(tmp_path / "b" / ("scanner1" if i % 2 else "scanner2") / f"{i}.jpg", seed=20 + i, fmt="JPEG")
    attributes = nuisance_attributes(build_manifest(tmp_path).samples)
    assert set(attributes) == {"aspect_ratio", "format", "folder"}   # no groups, one mode, one short side
    assert set(attributes["folder"]) == {"scanner1", "scanner2"} and set(attributes["format"]) == {".png", ".jpg"}


def test_umap_grid_coloured_by_a_manifest_attribute(tmp_path):
    from conftest import save_image
    from medprobe.manifest import make_dataset_manifest
    from medprobe.plots import attribute_labels, umap_figure_by
    from medprobe.umap_sweep import Sweep, write_layouts

    for i in range(6):
        save_image(tmp_path / "data" / "a" / f"{i}.png", seed=i, size=(40 + 20 * (i % 2), 40))
        save_image(tmp_path / "data" / "b" / f"{i}.png", seed=10 + i, size=(40, 40))
    manifest = make_dataset_manifest("d", {"adapter": "imagefolder"}, tmp_path / "data", tmp_path / "m.tsv",
                                     tmp_path / "i.tsv")
    samples = manifest.samples
    sweep = Sweep(layouts=np.random.default_rng(0).normal(size=(1, 2, 12, 2)).astype(np.float32), n_neighbors=[3],
                  n_neighbors_effective=[3], min_dist=[0.1, 0.5], labels=samples.label.to_numpy(),
                  sample_id=samples.sample_id.to_numpy(), attrs={"class_names": ["a", "b"]})
    write_layouts(tmp_path / "layouts.h5", sweep)
    out = umap_figure_by(tmp_path / "layouts.h5", tmp_path / "m.tsv", "aspect_ratio", tmp_path / "by.png", title="t")
    assert Image.open(out).size[0] > 100
    codes, names = attribute_labels(["x", "y", "x", "z"] + [f"r{i}" for i in range(12)], max_values=3)
    assert names == ["x", "r0", "r1", "other"] and codes[:4].tolist() == [0, 3, 0, 3]
    umap_figure_by(tmp_path / "layouts.h5", tmp_path / "m.tsv", "group", tmp_path / "none.png", title="t")


def tesseract_or_skip():
    import os

    from medprobe.errors import ToolError
    from medprobe.ocr import require_engine

    try:
        return require_engine()
    except ToolError as err:
        if os.environ.get("MEDPROBE_TEST_OCR") == "1":
            pytest.fail(str(err))
        pytest.skip(str(err))


def test_ocr_reads_words_written_at_known_places(repo):
    """Recall of the words the typographic probe writes (default style) on real demo images, and where they are."""
    from medprobe.imageio import load_rgb
    from medprobe.ocr import read_tokens

    tesseract_or_skip()
    words = ["BREAST", "AXILLA", "LEFT", "RIGHT", "MALIGNANT", "NORMAL"]
    style = OverlayStyle()
    demo = repo / "resources" / "demo"
    images = sorted((demo / "busi").glob("*/*.png"))[::8][:15] + sorted((demo / "brain_mr").glob("*/*.jpg"))[::8][:15]
    found = 0
    for i, path in enumerate(images):
        image = load_rgb(path)
        word = words[i % len(words)]
        left, top, right, bottom = text_box(word, style, *image.size)
        hits = [t for t in read_tokens(render(image, word, style)) if t["token"] == word]
        found += any(abs(t["left"] - left) <= 0.1 * image.width and abs(t["top"] - top) <= 0.1 * image.height
                     for t in hits)
    assert found / len(images) >= 0.9, f"recall {found}/{len(images)}"


def test_a_missing_ocr_engine_names_the_install_step(monkeypatch):
    import pytesseract

    from medprobe.errors import ToolError
    from medprobe.ocr import require_engine

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(ToolError, match=r"Tesseract engine, not found.*apt-get install tesseract-ocr.*bias.ocr: false"):
        require_engine()


def test_ocr_table_and_text_attributes(tmp_path):
    from medprobe.nuisance import read_ocr, text_attributes
    from medprobe.ocr import run_ocr

    tesseract_or_skip()
    root = tmp_path / "data"
    for i in range(6):
        image = Image.new("RGB", (320, 240), (20 + 10 * i, 20, 20))
        if i % 2:
            image = render(image, "AXILLA", OverlayStyle())
        (root / ("a" if i < 3 else "b")).mkdir(parents=True, exist_ok=True)
        image.save(root / ("a" if i < 3 else "b") / f"{i}.png")
    make_dataset_manifest("d", {"adapter": "imagefolder"}, root, tmp_path / "m.tsv", tmp_path / "i.tsv")
    run_ocr(tmp_path / "m.tsv", tmp_path / "ocr.tsv", threads=2)
    table = read_ocr(tmp_path / "ocr.tsv")
    assert table.sample_id.nunique() == 6
    assert set(table.loc[table.token != "", "sample_id"]) == {"a/1.png", "b/3.png", "b/5.png"}
    attributes = text_attributes(table, ["a/0.png", "a/1.png"])
    assert attributes["burned_in_text"].tolist() == ["(none)", "AXILLA"]
    assert attributes["has_text"].tolist() == ["no text", "text"]


def test_typographic_attack_counts_flips_to_the_written_class():
    from medprobe.zeroshot import attack_flips

    labels = np.array([0, 1, 2, 0])
    clean = np.eye(3)[[0, 1, 2, 1]] + 0.1          # the last image is misclassified: not counted
    obeys = np.stack([np.stack([np.eye(3)[w] for w in range(3)]) for _ in labels])      # prediction = written word
    ignores = np.stack([np.stack([np.eye(3)[y] for _ in range(3)]) for y in labels])    # prediction = true class
    assert attack_flips(clean, obeys, labels) == (1.0, 6, 0.75)
    assert attack_flips(clean, ignores, labels) == (0.0, 6, 0.75)


@pytest.mark.parametrize("bad,key", [({"font": "/no/such/font.ttf"}, "bias.font"),
                                     ({"word_sets": {"empty": []}}, "bias.word_sets.empty"),
                                     ({"size": 0.4, "word_sets": {"long": ["MEDIASTINUM", "ABDOMEN"]}},
                                      "bias.word_sets.long")])
def test_bad_overlay_settings_stop_embed_overlay_before_any_embedding(demo_dataset, monkeypatch, bad, key):
    from medprobe import models

    base, manifest, split = demo_dataset
    built = []
    monkeypatch.setattr(models, "build_encoder", lambda *args, **kwargs: built.append(1) or toy_encoder(True))
    out = base / "bad.overlays.h5"
    with pytest.raises(RegistryError, match=key.replace(".", r"\.")):
        embed_overlays("tiny", "reader", {"batch_size": 16}, manifest, split, out, {**BIAS, **bad},
                       class_names=CLASSES)
    assert built == [] and not out.exists()
