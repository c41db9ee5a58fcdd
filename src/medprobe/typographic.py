"""The typographic probe: how much a written word moves a frozen encoder's features, measured as a controlled experiment.

The paper saw BreastUS cluster by the words "BREAST" and "AXILLA" burned into its images, and concluded that
non-medical models are particularly vulnerable to overlaid text. Here the text is the only thing that varies: every
hold-out image (or a seeded subsample of at most `n_images`) is embedded once per word of each word set
(medprobe.overlay), by the same encoder, preprocessing and feature point as its clean embedding.

results/bias/overlays/{dataset}/{model}.h5   the embedding schema; one row per (image, word); /columns/image_id,
                                             /columns/word_set, /columns/word; attrs.overlay = style and word sets
results/bias/{dataset}/{model}.tsv           dataset, model, probe, attribute, metric, value, spread, n

Metrics, per word set (`attribute`):
- text_decodability: cross-validated linear probe accuracy (the paper's standardize + LinearSVC, C = 100 / n_train)
  for which word was written, folds split by image, chance-corrected: (acc - 1/W) / (1 - 1/W); spread = std over
  folds. 1: the word is perfectly readable from the features; 0: not at all.
- text_effect_size: the variance the word adds (mean squared distance of an image's overlaid embeddings from their
  mean) over the variance the class explains (between-class variance of the clean embeddings); spread = bootstrap std
  over images. Above 1: the text moves features more than the diagnosis does.
- shortcut_drop (the class-name word set, one word per class): the paper's probe trained on overlaid images whose
  word names their own class, tested on held-out images carrying the next class's name, against the same probe on
  the clean held-out images; the accuracy drop in points; spread = std over folds (split by image).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from medprobe import files
from medprobe.overlay import CLASS_NAMES_SET, OverlayPlan, OverlayStyle, overlay_plan, render

log = logging.getLogger(__name__)

BIAS_COLUMNS = ["dataset", "model", "probe", "attribute", "metric", "value", "spread", "n"]


class WriteWord:
    """The DataLoader's picture hook: row r of the overlay table gets its word written on it (picklable)."""

    def __init__(self, words: Sequence[str], styles: Sequence[OverlayStyle]):
        self.words = list(words)
        self.styles = list(styles)

    def __call__(self, row: int, image: Image.Image) -> Image.Image:
        return render(image, self.words[row], self.styles[row])


def probe_images(manifest: pd.DataFrame, split: pd.DataFrame, n_images: int, seed: int) -> pd.DataFrame:
    """The hold-out images of the split (a seeded subsample of at most n_images, in manifest order)."""
    holdout = set(split.loc[split["partition"] == "holdout", "sample_id"])
    chosen = manifest[manifest["sample_id"].isin(holdout)]
    if len(chosen) > n_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(chosen), size=n_images, replace=False))
        chosen = chosen.iloc[keep]
    return chosen.reset_index(drop=True)


def overlay_table(images: pd.DataFrame, plan: OverlayPlan) -> pd.DataFrame:
    """One row per (image, word): the manifest's columns plus image_id, word_set, word; image-major order."""
    rows = []
    for image in images.itertuples(index=False):
        for word_set, word in plan.words():
            rows.append({**image._asdict(), "image_id": image.sample_id, "word_set": word_set, "word": word,
                         "sample_id": f"{image.sample_id}|{word_set}|{word}"})
    return pd.DataFrame(rows)


def embed_overlays(dataset_id: str, model_id: str, model_spec: Mapping, manifest_path: str | Path,
                   split_path: str | Path, out_path: str | Path, bias: Mapping[str, Any], *,
                   weights_json: str | Path | None = None, class_names: Sequence[str] | None = None,
                   device: str = "auto", threads: int = 1, seed: int = 0, progress_file=None) -> Path:
    """The `embed_overlay` rule: the probe's images, each written with every word, through the model's pipeline."""
    import torch

    from medprobe.embed import extract_embeddings, plan_threads, resolve_device
    from medprobe.files import file_sha256
    from medprobe.manifest import class_names_of, read_manifest
    from medprobe.models import build_encoder
    from medprobe.overlay import check_fits
    from medprobe.split import read_split
    from medprobe.weights import read_record, record_paths

    manifest = read_manifest(manifest_path)
    names = class_names_of(manifest, class_names)
    plan = overlay_plan(bias, names)
    images = probe_images(manifest, read_split(split_path), int(bias.get("n_images", 500)), seed)
    plan = check_fits(plan, list(zip(images["width"], images["height"])), dataset_id=dataset_id)
    table = overlay_table(images, plan)
    record = read_record(weights_json, model_id) if weights_json else None
    encoder = build_encoder(model_id, model_spec, record_paths(record) if record else None)
    torch_threads, num_workers = plan_threads(threads, resolve_device(device), encoder.neural)
    torch.set_num_threads(torch_threads)
    log.info("typographic probe of '%s' on '%s': %d image(s) x %d word(s) = %d overlaid image(s); word sets %s",
             model_id, dataset_id, len(images), len(plan.words()), len(table), plan.word_sets)
    overlay = {"style": plan.style.as_dict(), "word_sets": plan.word_sets, "set_sizes": plan.set_sizes,
               "n_images": len(images)}
    return extract_embeddings(table, encoder, out_path, dataset_id=dataset_id, class_names=names,
                              manifest_sha256=file_sha256(manifest_path),
                              batch_size=int(model_spec.get("batch_size", 32)), num_workers=num_workers,
                              device=device, progress_file=progress_file,
                              picture=WriteWord(table["word"].tolist(),
                                                [plan.style_of(s) for s in table["word_set"]]),
                              extra_attrs={"overlay": overlay},
                              columns={k: table[k].tolist() for k in ("image_id", "word_set", "word")})


# --- the metrics ----------------------------------------------------------------------------------------------------

def _svc_accuracy(x_train, y_train, x_tests, C_numerator: float = 100.0, seed: int = 0) -> list[float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    scaler = StandardScaler().fit(x_train)
    model = LinearSVC(C=C_numerator / len(x_train), max_iter=10000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(scaler.transform(x_train), y_train)
    return [float((model.predict(scaler.transform(x)) == y).mean()) for x, y in x_tests]


def _image_folds(labels: np.ndarray, n_folds: int, seed: int):
    """Folds over images: stratified by class where every class allows it, else plain K-fold."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(labels)
    k = max(2, min(n_folds, len(labels)))
    if counts[counts > 0].min() >= k:
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))
    return list(KFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels))))


def text_decodability(words_features: np.ndarray, n_folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """words_features (images, W, D): chance-corrected CV accuracy of reading the word; folds split by image."""
    n, w, d = words_features.shape
    folds = _image_folds(np.zeros(n, dtype=np.int64), n_folds, seed)
    scores = []
    for train, test in folds:
        x_train = words_features[train].reshape(-1, d)
        y_train = np.tile(np.arange(w), len(train))
        x_test = words_features[test].reshape(-1, d)
        y_test = np.tile(np.arange(w), len(test))
        if np.ptp(x_train, axis=0).max() == 0:   # the features do not change at all: nothing to read
            accuracy = 1.0 / w
        else:
            accuracy = _svc_accuracy(x_train, y_train, [(x_test, y_test)], seed=seed)[0]
        scores.append((accuracy - 1.0 / w) / (1.0 - 1.0 / w))
    return float(np.mean(scores)), float(np.std(scores))


def text_effect_size(words_features: np.ndarray, clean: np.ndarray, labels: np.ndarray, *, n_boot: int = 200,
                     seed: int = 0) -> tuple[float, float]:
    """Variance added by the word over variance explained by the class (clean features); bootstrap std over images."""
    def ratio(index: np.ndarray) -> float:
        x = words_features[index]
        word_var = float(((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean())
        c, y = clean[index], labels[index]
        mu = c.mean(axis=0)
        class_var = float(np.mean([((c[y == k].mean(axis=0) - mu) ** 2).sum() for k in y]))
        return word_var / class_var if class_var > 0 else float("inf")

    everything = np.arange(len(clean))
    rng = np.random.default_rng(seed)
    boot = [ratio(rng.integers(0, len(clean), len(clean))) for _ in range(n_boot)]
    return ratio(everything), float(np.std([b for b in boot if np.isfinite(b)]) if boot else 0.0)


def shortcut_drop(words_features: np.ndarray, clean: np.ndarray, labels: np.ndarray, n_classes: int,
                  n_folds: int = 5, seed: int = 0) -> tuple[float, float, float, float]:
    """words_features (images, K, D) with word k naming class k. Returns (drop in points, its std over folds, clean
    accuracy, permuted accuracy) of a probe trained on images carrying their own class's name."""
    folds = _image_folds(labels, n_folds, seed)
    drops, clean_acc, permuted_acc = [], [], []
    rows = np.arange(len(labels))
    for train, test in folds:
        if len(np.unique(labels[train])) < 2:
            continue
        x_train = words_features[train, labels[train]]
        wrong = (labels[test] + 1) % n_classes
        on_clean, on_permuted = _svc_accuracy(x_train, labels[train],
                                              [(clean[test], labels[test]),
                                               (words_features[rows[test], wrong], labels[test])], seed=seed)
        drops.append(100.0 * (on_clean - on_permuted))
        clean_acc.append(on_clean)
        permuted_acc.append(on_permuted)
    return (float(np.mean(drops)), float(np.std(drops)), float(np.mean(clean_acc)), float(np.mean(permuted_acc)))


@dataclass
class ProbeInputs:
    clean: np.ndarray                         # (images, D), the clean embeddings of the probe's images
    labels: np.ndarray                        # (images,)
    words: dict[str, np.ndarray]              # word set -> (images, W, D)
    word_sets: dict[str, list[str]]


def align_overlays(clean_emb, overlay_emb) -> ProbeInputs:
    """The clean and overlaid embeddings of the probe's images as arrays (image order of the overlay file)."""
    from medprobe.errors import StoreError

    cols = overlay_emb.columns
    word_sets = overlay_emb.attrs["overlay"]["word_sets"]
    image_ids = list(dict.fromkeys(cols["image_id"]))
    position = {s: i for i, s in enumerate(clean_emb.sample_id)}
    missing = [i for i in image_ids if i not in position]
    if missing:
        raise StoreError(f"the overlay embeddings name {len(missing)} image(s) that the clean embeddings lack (first: "
                         f"{missing[0]}); they come from different manifests. Rerun embed_overlay.")
    clean = clean_emb.features[[position[i] for i in image_ids]]
    labels = clean_emb.labels[[position[i] for i in image_ids]]
    index = {(i, s, w): r for r, (i, s, w) in enumerate(zip(cols["image_id"], cols["word_set"], cols["word"]))}
    words = {}
    for name, members in word_sets.items():
        rows = [[index[(i, name, w)] for w in members] for i in image_ids]
        words[name] = overlay_emb.features[np.asarray(rows)]
    ok = np.isfinite(clean).all(axis=1) & np.all([np.isfinite(x).all(axis=(1, 2)) for x in words.values()], axis=0)
    if not ok.all():
        log.warning("%d image(s) with NaN features (failed images) left out of the typographic probe",
                    int((~ok).sum()))
    return ProbeInputs(clean=clean[ok], labels=labels[ok], words={k: v[ok] for k, v in words.items()},
                       word_sets=word_sets)


def typographic_metrics(inputs: ProbeInputs, n_classes: int, *, n_folds: int = 5, seed: int = 0,
                        n_boot: int = 200) -> pd.DataFrame:
    rows = []
    n = len(inputs.labels)
    for name, x in inputs.words.items():
        value, spread = text_decodability(x, n_folds, seed)
        rows.append(dict(probe="typographic", attribute=name, metric="text_decodability", value=value,
                         spread=spread, n=n))
        value, spread = text_effect_size(x, inputs.clean, inputs.labels, n_boot=n_boot, seed=seed)
        rows.append(dict(probe="typographic", attribute=name, metric="text_effect_size", value=value,
                         spread=spread, n=n))
    if CLASS_NAMES_SET in inputs.words and inputs.words[CLASS_NAMES_SET].shape[1] == n_classes:
        drop, spread, clean_acc, permuted_acc = shortcut_drop(inputs.words[CLASS_NAMES_SET], inputs.clean,
                                                              inputs.labels, n_classes, n_folds, seed)
        for metric, value, sd in (("shortcut_drop", drop, spread), ("shortcut_clean_accuracy", clean_acc, 0.0),
                                  ("shortcut_permuted_accuracy", permuted_acc, 0.0)):
            rows.append(dict(probe="typographic", attribute=CLASS_NAMES_SET, metric=metric, value=value, spread=sd,
                             n=n))
    return pd.DataFrame(rows)


def run_typographic(clean_path: str | Path, overlay_path: str | Path, out_path: str | Path, *, dataset_id: str,
                    model_id: str, n_folds: int = 5, seed: int = 0, n_boot: int = 200) -> pd.DataFrame:
    """The `typographic` rule."""
    from medprobe.store import read_embeddings

    clean, overlays = read_embeddings(clean_path), read_embeddings(overlay_path)
    inputs = align_overlays(clean, overlays)
    table = typographic_metrics(inputs, len(clean.class_names), n_folds=n_folds, seed=seed, n_boot=n_boot)
    table.insert(0, "model", model_id)
    table.insert(0, "dataset", dataset_id)
    table = table[BIAS_COLUMNS]
    files.write_tsv(out_path, table)
    for row in table.itertuples():
        log.info("%s %s: %.4f ± %.4f", row.attribute, row.metric, row.value, row.spread)
    return table
