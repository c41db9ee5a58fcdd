"""Few-shot linear probing, as in the DLILP / FLAIR protocol: K labelled images per class drawn from the training
part of the dataset's split (never from the hold-out), a logistic regression, scored on the same hold-out as the
paper's probe; repeated over seeds, reported as mean ± std.

results/fewshot/{dataset}/{model}.tsv: one row per (shots, seed, metric), plus n_train.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from medprobe import files
from medprobe.probe import align, classification_metrics
from medprobe.split import read_split
from medprobe.store import read_embeddings

log = logging.getLogger(__name__)

FEWSHOT_COLUMNS = ["dataset", "model", "shots", "seed", "metric", "value", "n_train", "n_eval"]


def draw_shots(labels: np.ndarray, pool: np.ndarray, shots: int, n_classes: int, seed: int) -> np.ndarray | None:
    """Row indices: exactly `shots` per class, drawn without replacement from the rows where `pool` is true.
    None when some class has fewer than `shots` rows in the pool."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(n_classes):
        rows = np.flatnonzero(pool & (labels == c))
        if len(rows) < shots:
            return None
        chosen.append(rng.choice(rows, size=shots, replace=False))
    return np.sort(np.concatenate(chosen))


def prepare(features: np.ndarray, how: str, pool: np.ndarray) -> np.ndarray:
    """l2: unit length; standardize: zero mean and unit variance over the training part's images (their features
    only: no label, and never the hold-out); raw: as they are."""
    if how == "l2":
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return features / np.where(norms > 0, norms, 1.0)
    if how == "standardize":
        mean, std = features[pool].mean(axis=0), features[pool].std(axis=0)
        return (features - mean) / np.where(std > 0, std, 1.0)
    return features


def fewshot_probe(features: np.ndarray, labels: np.ndarray, partition: np.ndarray, *, n_classes: int,
                  shots: Sequence[int] = (1, 2, 4, 8, 16), seeds: int = 5, C: float = 1.0, max_iter: int = 1000,
                  features_as: str = "standardize", base_seed: int = 0) -> pd.DataFrame:
    holdout = np.asarray(partition) == "holdout"
    train_pool = ~holdout
    features = prepare(np.asarray(features, dtype=np.float64), features_as, train_pool)
    rows = []
    for k in shots:
        for repeat in range(seeds):
            seed = base_seed + 1000 * int(k) + repeat
            chosen = draw_shots(labels, train_pool, int(k), n_classes, seed)
            if chosen is None:
                log.warning("%d-shot: some class has fewer than %d training images; skipped", k, k)
                break
            x_train, x_eval = features[chosen], features[holdout]
            model = LogisticRegression(C=C, max_iter=max_iter).fit(x_train, labels[chosen])
            scores = np.full((int(holdout.sum()), n_classes), -np.inf)
            scores[:, model.classes_] = model.predict_log_proba(x_eval)
            scores[np.isinf(scores)] = np.finfo(np.float64).min / 2
            metrics = classification_metrics(labels[holdout], model.predict(x_eval), scores, n_classes)
            for metric, value in metrics.items():
                rows.append(dict(shots=int(k), seed=seed, metric=metric, value=value, n_train=len(chosen),
                                 n_eval=int(holdout.sum())))
    return pd.DataFrame(rows)


def run_fewshot(embeddings_path: str | Path, split_path: str | Path, out_path: str | Path, *, dataset_id: str,
                model_id: str, params: Mapping, seed: int = 0) -> pd.DataFrame:
    """The `fewshot` rule."""
    emb = read_embeddings(embeddings_path)
    aligned = align(emb, read_split(split_path), source=str(embeddings_path))
    table = fewshot_probe(emb.features[aligned["row"].to_numpy()], aligned["label"].to_numpy(),
                          aligned["partition"].to_numpy(), n_classes=len(emb.class_names), shots=params["shots"],
                          seeds=params["seeds"], C=params["C"], max_iter=params["max_iter"],
                          features_as=params["features"], base_seed=seed)
    table.insert(0, "model", model_id)
    table.insert(0, "dataset", dataset_id)
    table = table.reindex(columns=FEWSHOT_COLUMNS)
    files.write_tsv(out_path, table)
    if len(table):
        summary = table[table.metric == "accuracy"].groupby("shots")["value"].agg(["mean", "std"])
        for shots, row in summary.iterrows():
            log.info("%d-shot hold-out accuracy: %.4f ± %.4f", shots, row["mean"], row["std"])
    return table
