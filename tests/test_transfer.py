"""The DLILP transferability protocol (medprobe.transfer) against a direct transcription of the authors' code
(jusiro/DLILP@2c9d3011a04de994041ed05d15135d1e873c04b2: cxrvlms/transferability/data/dataloader.py,
cxrvlms/transferability/modeling/adapters.py LinearProbe, cxrvlms/utils/metrics.py), on real features: the shipped
demo MRIs through a seeded random-init ResNet-50 (128 px, to keep the test quick). Same per-fold ACA, to the last digit."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medprobe import transfer

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo" / "brain_mr"
TARGETS = ["glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"]


# ---------------------------------------------------------------- the authors' code, transcribed (not imported)
def authors_loader_rows(dataframe, targets, shots_train, shots_val, shots_test, balance, seed):
    def get_shots(shots_str, N):
        if "%" in str(shots_str):
            return int(int(shots_str[:-1]) / 100 * N)
        return int(shots_str)

    def balance_data(data):
        labels = [s["label"] for s in data]
        unique_labels = np.unique(labels)
        counts = np.bincount(labels)
        N_max = np.max(counts)
        data_out = []
        for iLabel in unique_labels:
            idx = list(np.argwhere(np.array(labels) == iLabel)[:, 0])
            if N_max - counts[iLabel] > 0:
                idx += random.choices(idx, k=N_max - counts[iLabel])
            [data_out.append(data[iidx]) for iidx in idx]
        return data_out

    data = []
    for i in range(len(dataframe)):
        sample_df = dataframe.loc[i, :].to_dict()
        labels = [sample_df[t] for t in targets]
        if np.sum(labels) == 1:
            data.append({"image_path": sample_df["Path"], "label": int(np.argmax([sample_df[t] for t in targets]))})
    random.seed(seed)
    random.shuffle(data)
    labels = [d["label"] for d in data]
    data_train, data_val, data_test = [], [], []
    for iLabel in np.unique(labels):
        idx = list(np.squeeze(np.argwhere(labels == iLabel)))
        train_samples = get_shots(shots_train, len(idx))
        val_samples = get_shots(shots_val, len(idx))
        test_samples = get_shots(shots_test, len(idx))
        [data_test.append(data[i]) for i in idx[:test_samples]]
        [data_train.append(data[i]) for i in idx[test_samples:test_samples + train_samples]]
        [data_val.append(data[i]) for i in idx[test_samples + train_samples:test_samples + train_samples + val_samples]]
    if balance:
        data_train = balance_data(data_train)
    return {"train": data_train, "val": data_val, "test": data_test}


def authors_linear_probe(X, Y, X_test, num_targets):
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(random_state=0, C=0.316, max_iter=1000, verbose=0, class_weight="balanced")
    classifier.fit(X, Y)
    layer = torch.nn.Linear(X.shape[-1], num_targets, bias=True)
    layer.weight = torch.nn.Parameter(torch.tensor(classifier.coef_).to(torch.float32))
    layer.bias = torch.nn.Parameter(torch.tensor(classifier.intercept_).to(torch.float32))
    with torch.no_grad():
        score = layer(torch.tensor(X_test).to(torch.float32))
        if score.shape[-1] == 1:
            score = torch.sigmoid(score)
            score = torch.concat([1 - score, score], -1)
        else:
            score = torch.softmax(score, -1)
    return score.numpy()


def authors_aca(refs, preds):
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(refs, np.argmax(preds, -1))
    cm_norm = cm / np.expand_dims(np.sum(cm, -1), 1)
    return np.round(np.mean(np.diag(cm_norm)), 3)


def authors_run(features_by_path, train_csv, targets, shots_train, shots_test, folds, test_csv=None):
    acas = []
    for iFold in range(folds):
        loaders = authors_loader_rows(train_csv, targets, shots_train, "0%", shots_test, True, iFold)
        X = np.array([features_by_path[d["image_path"]] for d in loaders["train"]])
        Y = np.array([d["label"] for d in loaders["train"]])
        if test_csv is None:
            test = loaders["test"]
        else:
            test = authors_loader_rows(test_csv, targets, "0%", "0%", "100%", False, iFold)["test"]
        X_test = np.array([features_by_path[d["image_path"]] for d in test])
        refs = np.array([d["label"] for d in test])
        acas.append(authors_aca(refs, authors_linear_probe(X, Y, X_test, len(targets))))
    return acas


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo_features():
    """(relative path, class index, 2,048-d feature) of every demo MRI through a seeded random-init ResNet-50 (128 px, to keep the test quick)."""
    from PIL import Image
    from torchvision.models import resnet50
    from torchvision.transforms.functional import pil_to_tensor, resize

    torch.manual_seed(0)
    net = resnet50(weights=None)
    net.fc = torch.nn.Identity()
    net.eval()
    paths = sorted(p for p in DEMO.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(paths) >= 100
    batch = torch.stack([resize(pil_to_tensor(Image.open(p).convert("RGB")).float() / 255, [128, 128],
                                antialias=False) for p in paths])
    with torch.no_grad():
        feats = torch.cat([net(batch[i:i + 32]) for i in range(0, len(batch), 32)]).numpy()
    rel = [str(p.relative_to(DEMO)) for p in paths]
    labels = [TARGETS.index(p.parent.name) for p in paths]
    return rel, np.asarray(labels), feats.astype(np.float32)


def one_hot_csv(rel, labels, extra_rows=()):
    rows = [{"Path": r, **{t: int(i == c) for i, t in enumerate(TARGETS)}} for r, c in zip(rel, labels)]
    for position, row in extra_rows:
        rows.insert(position, row)
    return pd.DataFrame(rows)


def medprobe_ids(csv: pd.DataFrame, subset: str):
    """What a study adapter lists: the one-positive rows of a partition, numbered in file order."""
    keep = csv[csv[TARGETS].sum(axis=1) == 1].reset_index(drop=True)
    return [f"{subset}/{i:06d}/{p}" for i, p in enumerate(keep["Path"])], keep[TARGETS].to_numpy().argmax(1), keep


# ---------------------------------------------------------------- the protocol against the transcription
def test_pooled_protocol_matches_the_authors_code_per_fold(demo_features):
    """chexpert_5x200-style: one partition, 20 % of each class as the fold's test rows, 16 training shots."""
    rel, labels, feats = demo_features
    rng = np.random.default_rng(3)
    order = rng.permutation(len(rel))  # the partition's file order is not sorted by class
    # rows with two positives or none: the authors' loader drops them; the adapter never lists them
    extra = [(5, {"Path": "multi.png", "glioma_tumor": 1, "meningioma_tumor": 1, "no_tumor": 0, "pituitary_tumor": 0}),
             (40, {"Path": "none.png", "glioma_tumor": 0, "meningioma_tumor": 0, "no_tumor": 0, "pituitary_tumor": 0})]
    csv = one_hot_csv([rel[i] for i in order], labels[order], extra)
    by_path = dict(zip(rel, feats))
    expected = authors_run(by_path, csv, TARGETS, "16", "20%", folds=5)

    ids, ours_labels, keep = medprobe_ids(csv, "train")
    ours_feats = np.stack([by_path[p] for p in keep["Path"]])
    shuffle = rng.permutation(len(ids))  # the embedding file's row order is not the partition's
    table = transfer.transfer_probe(ours_feats[shuffle], ours_labels[shuffle], [ids[i] for i in shuffle],
                                    shots=[16], folds=5, shots_test_pool="20%")
    aca = table[table.metric == "aca"].sort_values("fold")
    assert aca["value"].tolist() == [float(v) for v in expected]
    assert (aca["n_test"] == 4 * int(0.2 * 40)).all() and (aca["n_train"] == 4 * 16).all()
    assert len(set(expected)) > 1  # folds really differ: the seed reaches the draw


def test_external_test_protocol_matches_the_authors_code_per_fold(demo_features):
    """SIIM/RSNA-style: a training partition (16 shots drawn per fold) and a fixed test partition; the
    training classes are unequal (balance tops up the smallest)."""
    rel, labels, feats = demo_features
    by_path = dict(zip(rel, feats))
    test_rows = [i for i in range(len(rel)) if i % 4 == 0]
    train_rows = [i for i in range(len(rel)) if i % 4 and not (labels[i] == 3 and i % 3 == 0)]
    train_rows = [i for i in train_rows if labels[i] != 2 or i % 8 in (1, 2)][:]  # class 2 has < 16 rows
    train_csv = one_hot_csv([rel[i] for i in train_rows], labels[train_rows])
    test_csv = one_hot_csv([rel[i] for i in test_rows], labels[test_rows])
    assert (train_csv[TARGETS].sum()["no_tumor"]) < 16
    expected = authors_run(by_path, train_csv, TARGETS, "16", "0%", folds=5, test_csv=test_csv)

    train_ids, train_labels, train_keep = medprobe_ids(train_csv, "train")
    test_ids, test_labels, test_keep = medprobe_ids(test_csv, "test")
    ids = train_ids + test_ids
    feats_all = np.stack([by_path[p] for p in list(train_keep["Path"]) + list(test_keep["Path"])])
    order = np.argsort(ids)  # as the manifest stores them: sorted by sample id
    table = transfer.transfer_probe(feats_all[order], np.concatenate([train_labels, test_labels])[order],
                                    [ids[i] for i in order], shots=[16], folds=5)
    aca = table[table.metric == "aca"].sort_values("fold")
    assert aca["value"].tolist() == [float(v) for v in expected]
    assert (aca["n_test"] == len(test_ids)).all() and (aca["test_set"] == "external").all()
    n_largest = int(np.bincount(train_labels).clip(max=16).max())
    assert (aca["n_train"] == 4 * n_largest).all()  # balanced: every class topped up to the largest


def test_fold_split_draws_per_class_in_shuffled_order():
    labels = [0] * 10 + [1] * 6
    split = transfer.fold_split(labels, 2, shots_train=3, shots_test="50%", balance=False)
    rng = random.Random(2)
    order = list(range(16))
    rng.shuffle(order)
    zeros = [i for i in order if labels[i] == 0]
    ones = [i for i in order if labels[i] == 1]
    assert split["test"] == zeros[:5] + ones[:3]
    assert split["train"] == zeros[5:8] + ones[3:6]
    assert transfer.fold_split(labels, 2, shots_train=3, shots_test="50%", balance=False) == split
    assert transfer.fold_split(labels, 3, shots_train=3, shots_test="50%", balance=False) != split


def test_balance_tops_up_smaller_classes_from_the_same_generator():
    labels = [0] * 10 + [1] * 2
    split = transfer.fold_split(labels, 0, shots_train=5, balance=True)
    train_labels = [labels[i] for i in split["train"]]
    assert train_labels.count(0) == train_labels.count(1) == 5
    assert set(split["train"][5:]) <= {10, 11}


def test_get_shots_and_summary_follow_the_authors():
    assert transfer.get_shots("20%", 200) == 40 and transfer.get_shots("20%", 7) == 1
    assert transfer.get_shots("16", 3) == 16 and transfer.get_shots(16, 3) == 16
    assert transfer.summarize_folds([0.5, 0.6, 0.7]) == (0.6, round(float(np.std([0.5, 0.6, 0.7])), 4))


def test_unparsable_ids_and_failed_rows_are_refused():
    with pytest.raises(Exception, match="do not say their subset"):
        transfer.subsets(["train/000000/a.png", "b.png"])
    feats = np.zeros((4, 3))
    feats[1, 0] = np.nan
    with pytest.raises(Exception, match="no features"):
        transfer.transfer_probe(feats, np.array([0, 0, 1, 1]), ["a", "b", "c", "d"], shots=[1], folds=1)


def test_other_datasets_are_one_pool_in_file_order():
    parts = transfer.subsets(["b", "a", "c"])
    assert parts.test is None and parts.pool.tolist() == [0, 1, 2]
    parts = transfer.subsets(["test/000001/x", "test/000000/y", "train/000001/z", "train/000000/w"])
    assert parts.pool.tolist() == [3, 2] and parts.test.tolist() == [1, 0]


# ---------------------------------------------------------------- tables
def fold_files(tmp_path, cells):
    """One transfer file per (dataset, model) with the given per-fold ACA values at K=16 and K=1."""
    paths = []
    for (dataset, model), values in cells.items():
        rows = []
        for k, scale in (("1", 0.5), ("16", 1.0)):
            for fold, v in enumerate(values):
                rows.append(dict(dataset=dataset, model=model, shots=k, fold=fold, metric="aca", value=round(v * scale, 3),
                                 n_train=2 * int(k), n_test=10, test_set="external"))
        path = tmp_path / f"{dataset}.{model}.tsv"
        pd.DataFrame(rows, columns=transfer.TRANSFER_COLUMNS).to_csv(path, sep="\t", index=False)
        paths.append(path)
    return paths


MODELS_T4 = {"medklip": {"name": "MedKLIP", "pretraining_data": "M"},
             "dlilp_mc": {"name": "DLILP", "pretraining_data": "M+C"}}
DATASETS_T4 = {"siim_pneumothorax": {"name": "SIIM"}, "covid_4class": {"name": "COVID"}}


def test_table4_layout_average_and_vs_published(tmp_path):
    from medprobe import transfer_tables

    paths = fold_files(tmp_path, {("siim_pneumothorax", "medklip"): [0.6, 0.7, 0.65, 0.62, 0.68],
                                  ("covid_4class", "medklip"): [0.7, 0.7, 0.7, 0.7, 0.7],
                                  ("siim_pneumothorax", "dlilp_mc"): [0.72, 0.74, 0.73, 0.71, 0.75]})
    outputs = {name: tmp_path / "out" / f"{name}.txt" for name in (
        "summary", "table", "markdown", "latex", "html", "vs_published", "vs_published_md", "vs_published_html",
        "shots_table", "shots_markdown", "shots_html")}
    outputs["shots_figure"] = tmp_path / "out" / "shots.png"
    published = ROOT / "resources" / "dlilp" / "published_table4.tsv"
    table = transfer_tables.make_transfer_tables(paths, models=MODELS_T4, datasets=DATASETS_T4, table_shots="16",
                                                 published=published, outputs=outputs, folds=5)
    assert table.columns.tolist() == ["model", "pretraining_data", "SIIM", "COVID", "Avg."]
    medklip = table.set_index("model").loc["MedKLIP"]
    siim_mean, siim_std = np.mean([0.6, 0.7, 0.65, 0.62, 0.68]), np.std([0.6, 0.7, 0.65, 0.62, 0.68])
    assert medklip["SIIM"] == f"{100 * round(siim_mean, 4):.2f} ± {100 * round(siim_std, 4):.2f}"
    assert medklip["Avg."] == f"{(100 * round(siim_mean, 4) + 70.0) / 2:.2f}"
    assert table.set_index("model").loc["DLILP", "COVID"] == "–"
    assert table.set_index("model").loc["DLILP", "Avg."].endswith("(1 datasets)")

    compared = pd.read_csv(outputs["vs_published"], sep="\t")
    assert len(compared) == 3  # medklip x 2, dlilp_mc x SIIM; nothing invented for the missing cell
    row = compared.set_index(["model_id", "dataset_id"]).loc[("medklip", "siim_pneumothorax")]
    assert row["published_pct"] == 64.82
    assert row["delta_pp"] == pytest.approx(round(100 * round(siim_mean, 4) - 64.82, 2))
    assert "Mean |delta|" in outputs["vs_published_md"].read_text()

    by_k = pd.read_csv(outputs["shots_table"], sep="\t")
    assert by_k.columns.tolist() == ["dataset", "model", "1-shot", "16-shot"]
    assert len(by_k) == 3
    assert outputs["shots_figure"].read_bytes()[:4] == b"\x89PNG"
    assert "$\\pm$" in outputs["latex"].read_text()


def test_shot_order_is_numeric():
    from medprobe.shots import shot_order

    assert shot_order(["16", "2", "100", "1", "all"]) == ["1", "2", "16", "100", "all"]


def test_table3_layout_and_vs_published(tmp_path):
    """Table 3: models x (dataset, prompt set), one decimal; the label head's equal Name and Desc.; published
    'descriptions' matched with our ensemble; the published rows that cannot be run are said, not invented."""
    from medprobe import transfer_tables
    from medprobe.transfer import ZEROSHOT_COLUMNS

    cells = {("covid_2class", "medclip_r50", "names", "text"): 0.741,
             ("covid_2class", "medclip_r50", "ensemble", "text"): 0.8,
             ("covid_4class", "medclip_r50", "names", "text"): 0.41,
             ("covid_4class", "medclip_r50", "ensemble", "text"): 0.4,
             ("covid_2class", "dlilp_mc", "names", "label"): 0.79,
             ("covid_2class", "dlilp_mc", "ensemble", "label"): 0.79}
    paths = []
    for (dataset, model, prompt_set, head), value in cells.items():
        path = tmp_path / f"{dataset}.{model}.{prompt_set}.tsv"
        pd.DataFrame([dict(dataset=dataset, model=model, experiment="e", criterion="c", prompt_set=prompt_set,
                           head=head, test_set="test", fold=0, n_eval=10, metric=m, value=value if m == "aca" else 0.1)
                      for m in ("aca", "kappa")], columns=ZEROSHOT_COLUMNS).to_csv(path, sep="\t", index=False)
        paths.append(path)
    outputs = {name: tmp_path / "out" / f"{name}.txt" for name in (
        "table", "markdown", "latex", "html", "vs_published", "vs_published_md", "vs_published_html")}
    models = {"medklip": {"name": "MedKLIP", "pretraining_data": "M"},
              "medclip_r50": {"name": "MedCLIP", "pretraining_data": "M+C"},
              "dlilp_mc": {"name": "DLILP", "pretraining_data": "M+C"}}
    datasets = {"covid_2class": {"name": "COVID 2"}, "covid_4class": {"name": "COVID 4"}}
    table = transfer_tables.make_table3(paths, models=models, datasets=datasets,
                                        params={"prompt_sets": ["names", "ensemble"], "desc_prompt_set": "ensemble"},
                                        published=ROOT / "resources" / "dlilp" / "published_table3.tsv",
                                        outputs=outputs)
    assert table.columns.tolist() == ["model", "pretraining_data", "head", "COVID 2 Name", "COVID 2 Desc.",
                                      "COVID 4 Name", "COVID 4 Desc."]
    assert table["model"].tolist() == ["MedCLIP", "DLILP"]  # MedKLIP has no results: no row
    rows = table.set_index("model")
    assert rows.loc["MedCLIP", "COVID 2 Name"] == "74.1" and rows.loc["MedCLIP", "COVID 4 Desc."] == "40.0"
    assert rows.loc["DLILP", "head"] == "label"
    assert rows.loc["DLILP", "COVID 2 Name"] == rows.loc["DLILP", "COVID 2 Desc."] == "79.0"
    assert rows.loc["DLILP", "COVID 4 Name"] == "–"

    compared = pd.read_csv(outputs["vs_published"], sep="\t")
    compared = compared.set_index(["model_id", "dataset_id", "published_prompts"])
    assert len(compared) == 6  # medclip 4, dlilp 2-class 2; nothing for the missing cells
    assert compared.loc[("medclip_r50", "covid_2class", "names"), "delta_pp"] == 0.0
    desc = compared.loc[("medclip_r50", "covid_2class", "descriptions")]
    assert desc["our_prompts"] == "ensemble" and desc["published_pct"] == 78.8 and desc["delta_pp"] == 1.2
    assert compared.loc[("dlilp_mc", "covid_2class", "names"), "head"] == "label"
    notes = outputs["vs_published_md"].read_text()
    assert "CLIP_loss, UniCL_loss" in notes and "medklip: not reproducible" in notes
    assert "unimodal_mc: not run by this configuration" in notes
    assert "two-head swap" in outputs["markdown"].read_text()
    assert "$\\pm$" not in outputs["latex"].read_text() and "COVID 2 Desc." in outputs["latex"].read_text()
