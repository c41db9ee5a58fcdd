"""Few-shot, zero-shot, paired tests and the comparison with the published table."""

import numpy as np
import pandas as pd
import pytest

from medprobe.fewshot import draw_shots, fewshot_probe
from medprobe.paired import holm, paired_tests, sign_flip_test
from medprobe.split import make_split
from medprobe.tables import (format_cell, paper_table, protocol_markdown, protocol_summary, published_flags,
                             read_published, summarize, to_latex, vs_published)


def blobs(n_per_class=40, n_classes=3, dim=12, seed=0, separation=4.0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return rng.normal(size=(n_classes, dim))[labels] * separation + rng.normal(size=(len(labels), dim)), labels


def test_shots_are_exactly_k_per_class_and_never_from_the_holdout():
    features, labels = blobs()
    split = make_split([str(i) for i in range(len(labels))], labels, seed=0)
    pool = (split.partition != "holdout").to_numpy()
    for k in (1, 4, 16):
        chosen = draw_shots(labels, pool, k, 3, seed=k)
        assert np.bincount(labels[chosen], minlength=3).tolist() == [k, k, k]
        assert pool[chosen].all() and len(set(chosen)) == len(chosen)
    assert draw_shots(labels, pool, 40, 3, seed=0) is None  # only 32 training images per class
    again = draw_shots(labels, pool, 4, 3, seed=4)
    np.testing.assert_array_equal(again, draw_shots(labels, pool, 4, 3, seed=4))


def test_fewshot_probe_improves_with_shots_and_scores_the_holdout():
    features, labels = blobs(n_per_class=60, separation=0.8)
    split = make_split([str(i) for i in range(len(labels))], labels, seed=0)
    table = fewshot_probe(features, labels, split.partition.to_numpy(), n_classes=3, shots=(1, 16), seeds=4)
    acc = table[table.metric == "accuracy"].groupby("shots").value.mean()
    assert acc[16] > acc[1] and acc[16] > 0.8
    assert (table.n_eval == (split.partition == "holdout").sum()).all()
    assert sorted(table[table.metric == "accuracy"].groupby("shots").size().tolist()) == [4, 4]


def test_paired_test_on_constructed_predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    sample_id = [f"s{i}" for i in range(200)]

    def preds(correct_rate, seed):
        r = np.random.default_rng(seed)
        rows = []
        for fold in range(5):
            right = r.random(200) < correct_rate
            rows.append(pd.DataFrame({"sample_id": sample_id, "label": labels, "fold": fold,
                                      "prediction": np.where(right, labels, (labels + 1) % 3)}))
        return pd.concat(rows)

    same = preds(0.7, 1)
    table = paired_tests({"a": same, "b": same.copy(), "good": preds(0.95, 2)}, dataset_id="d",
                         n_permutations=2000)
    by_pair = table.set_index(["model_a", "model_b"])
    assert by_pair.loc[("a", "b"), "p_value"] == 1.0 and by_pair.loc[("a", "b"), "difference_pp"] == 0.0
    assert by_pair.loc[("a", "good"), "p_value"] < 0.001 and by_pair.loc[("a", "good"), "difference_pp"] < -15
    assert (table.p_holm >= table.p_value).all()
    assert sign_flip_test(np.zeros(10)) == 1.0
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


MODELS = {"biomedclip": {"name": "BiomedCLIP", "group": "Medical modality-agnostic", "backbone": "ViT-B/16",
                         "feature_point": "image_embeds"},
          "pixels": {"name": "Pixels (32x32 gray)", "group": "Baselines", "backbone": "none",
                     "feature_point": "pixels"}}
DATASETS = {"brainmr": {"name": "BrainMR", "classes": ["a", "b", "c", "d"]},
            "busi": {"name": "BreastUS", "classes": ["x", "y", "z"]},
            "breakhis": {"name": "BreakHis", "classes": ["benign", "malignant"]}}


def probe_rows():
    rows = []
    for d, spec in DATASETS.items():
        for m in MODELS:
            for fold in range(5):
                for metric in ("accuracy", "f1_macro") + (("f1_binary",) if len(spec["classes"]) == 2 else ()):
                    rows.append(dict(dataset=d, model=m, fold=fold, eval="holdout", metric=metric,
                                     value=0.9 + 0.01 * fold + (0.02 if metric == "f1_binary" else 0),
                                     n_classes=len(spec["classes"])))
    return pd.DataFrame(rows)


def test_vs_published_joins_on_names_and_flags_the_copied_column(repo):
    published = read_published(repo / "resources" / "published_table.tsv")
    flags = published_flags(published)
    assert flags[("BiomedCLIP", "BreastUS", "accuracy")].startswith("copy of the BrainMR cell")
    assert ("FLAIR", "BreastUS", "accuracy") not in flags  # FLAIR's BreastUS cells differ from its BrainMR ones
    summary = summarize(probe_rows())
    table = vs_published(summary, published, MODELS, DATASETS)
    assert set(table.model) == {"BiomedCLIP"}  # pixels is not in the poster
    brain = table[(table.dataset == "BrainMR") & (table.metric == "accuracy")].iloc[0]
    assert brain.ours_mean_pct == 92.0 and brain.published_mean_pct == 91.0 and brain.delta_pp == 1.0
    assert brain.flag == "" and brain.marker == "*"
    breakhis_f1 = table[(table.dataset == "BreakHis") & (table.metric == "f1")].iloc[0]
    assert breakhis_f1.ours_mean_pct == 94.0  # the poster's F-score: binary F1 on two classes
    assert table[table.dataset == "BreastUS"].flag.str.startswith("copy").all()


def test_latex_and_protocol_tables():
    table = paper_table(summarize(probe_rows()), MODELS, DATASETS)
    latex = to_latex(table, ["a note"])
    assert latex.startswith("% a note") and "\\toprule" in latex and "$\\pm$" in latex
    assert "BreakHis F1" in latex
    fewshot = pd.DataFrame({"dataset": "brainmr", "model": "pixels", "shots": [1, 1, 16, 16], "seed": [1, 2, 1, 2],
                            "metric": "accuracy", "value": [0.4, 0.6, 0.8, 0.9]})
    summary = protocol_summary([_write(fewshot)], ["shots"])
    assert summary.set_index("shots").loc[16, "mean"] == pytest.approx(0.85)
    text = protocol_markdown(summary, "shots", MODELS, DATASETS, "Few-shot")
    assert "BrainMR 1-shot | BrainMR 16-shot" in text and format_cell(0.85, 0.05, 1, 1) in text


def _write(frame):
    import tempfile

    path = tempfile.NamedTemporaryFile(suffix=".tsv", delete=False).name
    frame.to_csv(path, sep="\t", index=False)
    return path


def test_zero_shot_on_constructed_features(repo, tmp_path):
    """Image features that equal each class's text embedding (plus noise) are classified perfectly."""
    from medprobe.models.open_clip_family import build_text_encoder
    from medprobe.registry import load_datasets, load_models
    from medprobe.store import write_embeddings
    from medprobe.zeroshot import class_embeddings, class_prompts, run_zeroshot

    spec = load_models(repo / "config" / "models.yaml")["clip_vit_b16_random"]
    dataset = load_datasets(repo / "config" / "datasets.yaml")["busi_demo"]
    encode = build_text_encoder("clip_vit_b16_random", spec, None)
    prompts = class_prompts(dataset["classes"], dataset)
    assert set(prompts) == {"names", "descriptions"} and prompts["names"][0][0] == "a photo of a benign breast lesion."
    text = class_embeddings(encode, prompts["descriptions"])
    labels = np.repeat([0, 1, 2], 20)
    features = text[labels] * 10 + np.random.default_rng(0).normal(size=(60, text.shape[1])) * 0.01
    ids = [f"s{i}" for i in range(60)]
    attrs = {"medprobe_version": "0", "model_id": "clip_vit_b16_random", "feature_point": "image_embeds",
             "weights": {}, "preprocessing": {}, "dataset_id": "busi_demo", "manifest_sha256": "x",
             "class_names": dataset["classes"], "device": "cpu", "dtype": "float32", "created_utc": "t"}
    emb = write_embeddings(tmp_path / "e.h5", features, labels, ids, [""] * 60, attrs)
    split = make_split(ids, labels, seed=0)
    split.to_csv(tmp_path / "split.tsv", sep="\t", index=False)
    table = run_zeroshot(emb, tmp_path / "split.tsv", None, tmp_path / "z.tsv", dataset_id="busi_demo",
                         model_id="clip_vit_b16_random", model_spec=spec, dataset_spec=dataset)
    acc = table[(table.metric == "accuracy")].set_index("prompt_set").value
    assert acc["descriptions"] == 1.0 and set(table.n_eval) == {12}
