"""The atlas explorer: its data encodings, the thumbnails (and images that cannot be read), and the page itself."""

from __future__ import annotations

import base64
import json
import re

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import copy_demo_subset
from medprobe.explorer import MISSING, build_explorer, categorical, holdout_predictions, make_thumbnails, quantise


def test_quantised_layouts_come_back_within_half_a_step():
    rng = np.random.default_rng(0)
    layout = rng.normal(size=(500, 2)) * [30, 3] + [100, -5]
    layout[7] = np.nan
    codes, (x0, y0, step) = quantise(layout)
    assert codes.dtype == np.uint16 and (codes[7] == MISSING).all() and codes[np.arange(500) != 7].max() < MISSING
    back = np.column_stack([x0 + codes[:, 0] * step, y0 + codes[:, 1] * step])
    ok = np.arange(500) != 7
    assert np.abs(back[ok] - layout[ok]).max() <= step / 2 + 1e-12
    assert step == pytest.approx(np.ptp(layout[ok], axis=0).max() / 65534)  # one square grid: both axes, one step


def test_holdout_predictions_take_the_fold_models_majority():
    predictions = pd.DataFrame({"sample_id": ["a"] * 5 + ["b"] * 4 + ["c"] * 5,
                                "fold": [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2, 3, 4],
                                "prediction": [1, 1, 0, 1, 2, 2, 0, 0, 2, 0, 0, 0, 0, 0]})
    predicted, agree, correct = holdout_predictions(predictions, ["a", "b", "c", "d"], np.array([1, 0, 1, 0]))
    assert predicted.tolist() == [1, 0, 0, -1]  # b: a 2-2 tie goes to the lower class
    assert agree.tolist() == [3, 2, 5, 0]
    assert correct.tolist() == [1, 1, 2, 0]  # d is not in the hold-out


def test_an_attribute_with_many_values_keeps_the_common_ones_and_other():
    values = [f"v{i % 20}" for i in range(200)] + ["v0"] * 50 + [""] * 3
    attr = categorical(values, "x")
    assert len(attr["names"]) == 12 and attr["names"][0] == "v0" and attr["names"][-1] == "other"
    decoded = [attr["names"][c] for c in attr["codes"]]
    assert decoded[:3] == ["v0", "v1", "v2"] and decoded[19] == "other" and decoded[-1] == "other"
    assert categorical(["a", "", "a"], "group")["names"] == ["a", "(none)"]  # an empty value is named, not dropped
    assert categorical(["3", "10", "2"], "size")["names"] == ["2", "3", "10"]  # numbers in numeric order


@pytest.fixture()
def small_dataset(tmp_path):
    """A manifest, a split, two models' layouts and predictions over 24 real demo images."""
    from medprobe.manifest import build_manifest, write_manifest
    from medprobe.split import split_dataset
    from medprobe.umap_sweep import Sweep, write_layouts

    data = copy_demo_subset(tmp_path / "data", per_class=8)
    manifest = build_manifest(data, classes=["glioma_tumor", "no_tumor", "pituitary_tumor"])
    write_manifest(manifest, tmp_path / "manifest.tsv", tmp_path / "manifest.issues.tsv")
    split_dataset(tmp_path / "manifest.tsv", tmp_path / "split.tsv", tmp_path / "split.issues.tsv",
                  dataset_id="small", seed=0, holdout_fraction=0.25, n_folds=3)
    samples = pd.read_csv(tmp_path / "manifest.tsv", sep="\t")
    split = pd.read_csv(tmp_path / "split.tsv", sep="\t")
    rng = np.random.default_rng(1)
    layouts, predictions = {}, {}
    for m, model in enumerate(["alpha", "beta"]):
        keep = np.arange(len(samples)) != (5 if model == "beta" else -1)  # beta lost one image (NaN features)
        sweep = Sweep(layouts=rng.normal(size=(2, 2, int(keep.sum()), 2)).astype(np.float32), n_neighbors=[3, 5],
                      n_neighbors_effective=[3, 5], min_dist=[0.1, 0.5], labels=samples["label"].to_numpy()[keep],
                      sample_id=samples["sample_id"].to_numpy()[keep].astype(object),
                      attrs={"model_id": model, "dataset_id": "small", "clipped": {}, "class_names": []})
        layouts[model] = tmp_path / f"{model}.h5"
        write_layouts(layouts[model], sweep)
        holdout = split[split["partition"] == "holdout"]
        rows = [{"sample_id": s, "label": l, "fold": f, "prediction": (l + m * (f == 0)) % 3}
                for s, l in zip(holdout["sample_id"], holdout["label"]) for f in range(3)]
        predictions[model] = tmp_path / f"{model}.predictions.tsv"
        pd.DataFrame(rows).to_csv(predictions[model], sep="\t", index=False)
    return tmp_path, samples, layouts, predictions


def decode_model_script(path):
    text = path.read_text()
    payload = json.loads(re.search(r"\] = (\{.*\});\s*$", text, re.S).group(1))
    coords = np.frombuffer(base64.b64decode(payload["coords"]), dtype="<u2").reshape(len(payload["settings"]), -1, 2)
    return payload, coords


def test_the_page_carries_every_layout_and_names_unreadable_images(small_dataset):
    from medprobe.umap_sweep import read_layouts

    tmp_path, samples, layouts, predictions = small_dataset
    broken = samples["path"].iloc[3]
    with open(broken, "r+b") as handle:  # the image was replaced by garbage after the manifest was made
        handle.write(b"not an image any more" * 10)
        handle.truncate()
    table = make_thumbnails(tmp_path / "manifest.tsv", tmp_path / "thumbs", tmp_path / "thumbs.tsv", px=48)
    assert table["thumbnail"].iloc[3] == "" and table["status"].iloc[3].startswith("unreadable")
    assert (table["thumbnail"] != "").sum() == len(samples) - 1
    assert all(max(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "thumbs" / name).size) <= 48
               for name in table["thumbnail"] if name)

    page = build_explorer("small", tmp_path / "manifest.tsv", tmp_path / "split.tsv", tmp_path / "thumbs",
                          tmp_path / "thumbs.tsv", layouts, tmp_path / "explorer",
                          model_names={"alpha": "Alpha", "beta": "Beta"}, predictions=predictions)
    html = page.read_text()
    assert "Bokeh" in html and "cdn.bokeh.org" not in html
    assert not re.search(r"<script[^>]+src=\"https?://", html)  # nothing loaded from the network
    assert samples["sample_id"].iloc[3] in html and "without a thumbnail" in html  # the unreadable one is named
    assert len(list((tmp_path / "explorer" / "thumbs").glob("*.jpg"))) == len(samples) - 1

    for key, model in (("m00", "alpha"), ("m01", "beta")):
        payload, coords = decode_model_script(tmp_path / "explorer" / "layouts" / f"{key}.js")
        sweep = read_layouts(layouts[model])
        assert payload["settings"] == [[3, 0.1], [3, 0.5], [5, 0.1], [5, 0.5]]
        position = {s: i for i, s in enumerate(samples["sample_id"])}
        for s, (a, b) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            x0, y0, step = payload["scales"][s]
            rows = [position[i] for i in sweep.sample_id]
            back = np.column_stack([x0 + coords[s, rows, 0] * step, y0 + coords[s, rows, 1] * step])
            assert np.abs(back - sweep.layouts[a, b]).max() <= step / 2 + 1e-6
        if model == "beta":
            assert (coords[:, 5] == MISSING).all()  # the image beta has no features for has no point
        correct = np.frombuffer(base64.b64decode(payload["correct"]), dtype=np.uint8)
        split = pd.read_csv(tmp_path / "split.tsv", sep="\t").set_index("sample_id").loc[samples["sample_id"]]
        assert ((correct > 0) == (split["partition"] == "holdout").to_numpy()).all()
        assert (correct[correct > 0] == 1).all()  # the majority of 3 fold models is right for both models


def test_thumbnails_shrink_to_fit_their_budget(small_dataset):
    tmp_path, samples, _, _ = small_dataset
    table = make_thumbnails(tmp_path / "manifest.tsv", tmp_path / "t", tmp_path / "t.tsv", px=256, budget_mb=0.05)
    assert table["bytes"].sum() <= 0.05 * 2 ** 20 * 1.15  # estimated from a sample, so within a margin
    big = make_thumbnails(tmp_path / "manifest.tsv", tmp_path / "u", tmp_path / "u.tsv", px=256, budget_mb=100)
    assert big["bytes"].sum() > table["bytes"].sum()
