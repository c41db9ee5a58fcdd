"""The DLILP transferability protocol (Silva-Rodríguez, Dolz & Ben Ayed, IPMI 2025), as the authors run it.

Read from jusiro/DLILP@2c9d3011a04de994041ed05d15135d1e873c04b2:
- cxrvlms/transferability/data/dataloader.py `get_dataloader_splits`, `balance_data`, `get_shots`: the rows of the
  partition csv in file order; per fold f, `random.seed(f)` then `random.shuffle(rows)`; per class (in label order),
  the first `shots_test` of its rows (in shuffled order) are the test rows, the next `shots_train` the training rows,
  the next `shots_val` the validation rows. "N%" means int(N / 100 * n_class). With `balance`, every smaller training
  class is topped up to the largest with `random.choices` from the same generator, after the shuffle.
  `--experiment_test X` scores every fold model on the whole of X instead (main_transferability.py).
- cxrvlms/transferability/modeling/adapters.py `LinearProbe`: LogisticRegression(random_state=0, C=0.316,
  max_iter=1000, class_weight="balanced") on the raw features (no standardisation); prediction through a float32
  linear layer holding coef_ and intercept_ (sigmoid for one output column, softmax otherwise), argmax.
- cxrvlms/utils/metrics.py `classification_metrics`, `average_folds_results`: ACA = mean of the row-normalised
  confusion matrix's diagonal (balanced accuracy), rounded to 3 decimals per fold; mean and np.std over the folds.

In medprobe a dataset of this study lists its rows in partition order with sample ids "train/000123/<path>" and
"test/000045/<path>": the `test` rows are the fixed external test set. A dataset without such ids (any other
medprobe dataset) is one pool in manifest order, and its per-fold test rows come from `shots_test` ("20%").

Not reproducible from the authors' code, and why it does not change a score: their training DataLoader shuffles the
rows it feeds to the feature extractor (torch's generator), so the order of the training matrix differs; lbfgs
converges to the same optimum from any row order, up to the solver's tolerance.

results/transfer/{dataset}/{model}.tsv: one row per (shots, fold, metric) with n_train and n_test.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from medprobe import files
from medprobe.errors import StoreError
from medprobe.store import read_embeddings

log = logging.getLogger(__name__)

TRANSFER_COLUMNS = ["dataset", "model", "shots", "fold", "metric", "value", "n_train", "n_test", "test_set"]
# the zero-shot rule's file (medprobe.cxr_zeroshot writes it, medprobe.transfer_tables reads it); here, because both
# import this module and the tables' env has no torch
ZEROSHOT_COLUMNS = ["dataset", "model", "experiment", "criterion", "prompt_set", "head", "test_set", "fold", "n_eval",
                    "metric", "value"]
SUBSET_ID = re.compile(r"^(train|test)/(\d+)/")
METRICS = ("aca", "kappa", "f1_avg", "auc_avg")


def get_shots(shots: str | int, n: int) -> int:
    """The authors' `get_shots`: "N%" -> int(N / 100 * n), anything else -> int(shots)."""
    text = str(shots)
    if "%" in text:
        return int(int(text[:-1]) / 100 * n)
    return int(text)


@dataclass
class Subsets:
    """Row indices (into the embedding file) of the training pool and the fixed test set, each in partition order."""

    pool: np.ndarray
    test: np.ndarray | None


def subsets(sample_ids: Sequence[str]) -> Subsets:
    """The pool and the external test set from the sample ids (see the module docstring), in partition order."""
    parsed = [SUBSET_ID.match(s) for s in sample_ids]
    if not any(parsed):
        return Subsets(pool=np.arange(len(sample_ids)), test=None)
    unparsed = [s for s, m in zip(sample_ids, parsed) if m is None]
    if unparsed:
        raise StoreError(f"{len(unparsed)} sample id(s) do not say their subset (train/NNNNNN/... or "
                         f"test/NNNNNN/...), e.g. {unparsed[0]!r}: rebuild the manifest with the dataset's adapter")
    order = {"train": [], "test": []}
    for row, match in enumerate(parsed):
        order[match.group(1)].append((int(match.group(2)), row))
    pool = np.array([row for _, row in sorted(order["train"])], dtype=np.int64)
    test = np.array([row for _, row in sorted(order["test"])], dtype=np.int64) if order["test"] else None
    return Subsets(pool=pool, test=test)


def fold_split(labels: Sequence[int], fold: int, *, shots_train: str | int, shots_test: str | int = "0%",
               shots_val: str | int = "0%", balance: bool = True) -> dict[str, list[int]]:
    """Positions (into `labels`, the pool in partition order) of the fold's train / val / test rows, as the authors'
    get_dataloader_splits draws them with seed = fold; `train` is after balancing (oversampled positions repeat)."""
    rng = random.Random(fold)  # the same stream as random.seed(fold)
    order = list(range(len(labels)))
    rng.shuffle(order)
    shuffled = np.asarray([labels[i] for i in order])
    train, val, test = [], [], []
    for label in np.unique(shuffled):
        members = [order[i] for i in np.flatnonzero(shuffled == label)]
        n_train, n_val, n_test = (get_shots(s, len(members)) for s in (shots_train, shots_val, shots_test))
        test += members[:n_test]
        train += members[n_test:n_test + n_train]
        val += members[n_test + n_train:n_test + n_train + n_val]
    if balance and train:
        train = balanced(train, [labels[i] for i in train], rng)
    return {"train": train, "val": val, "test": test}


def balanced(rows: list[int], labels: Sequence[int], rng: random.Random) -> list[int]:
    """The authors' balance_data: each class's rows, then random.choices of them up to the largest class."""
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    largest = counts.max()
    out = []
    for label in np.unique(labels):
        members = list(np.flatnonzero(labels == label))
        if largest - counts[label] > 0:
            members += rng.choices(members, k=int(largest - counts[label]))
        out += [rows[i] for i in members]
    return out


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *, C: float = 0.316,
                 max_iter: int = 1000) -> np.ndarray:
    """The authors' LinearProbe: scikit-learn's logistic regression, scored through a float32 linear layer
    (probabilities, one column per class: sigmoid for a binary model, softmax otherwise)."""
    import torch
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(random_state=0, C=C, max_iter=max_iter, class_weight="balanced")
    model.fit(x_train, y_train)
    weight = torch.tensor(model.coef_).to(torch.float32)
    bias = torch.tensor(model.intercept_).to(torch.float32)
    with torch.no_grad():
        score = torch.nn.functional.linear(torch.as_tensor(np.asarray(x_test, dtype=np.float32)), weight, bias)
        if score.shape[-1] == 1:
            score = torch.sigmoid(score)
            score = torch.cat([1 - score, score], -1)
        else:
            score = torch.softmax(score, -1)
    return score.numpy()


def fold_metrics(refs: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The authors' per-fold metrics: ACA (balanced accuracy of the argmax, rounded to 3 decimals), quadratic kappa
    (3 decimals), mean per-class F1 and one-vs-rest AUC of the classes present (each rounded to 3 decimals first)."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score, roc_auc_score

    preds = np.argmax(probs, -1)
    cm = confusion_matrix(refs, preds)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm_norm = cm / np.expand_dims(np.sum(cm, -1), 1)
    present = np.unique(refs)
    return {
        "aca": float(np.round(np.mean(np.diag(cm_norm)), 3)),
        "kappa": float(np.round(cohen_kappa_score(refs, preds, weights="quadratic"), 3)),
        "f1_avg": float(np.mean([np.round(f1_score(refs == i, preds == i), 3) for i in present])),
        "auc_avg": float(np.mean([np.round(roc_auc_score(refs == i, probs[:, i]), 3) for i in present])),
    }


def transfer_probe(features: np.ndarray, labels: np.ndarray, sample_ids: Sequence[str], *,
                   shots: Sequence[int | str] = (16,), folds: int = 5, shots_test_pool: str | int = "20%",
                   shots_val: str | int = "0%", balance: bool = True, C: float = 0.316,
                   max_iter: int = 1000) -> pd.DataFrame:
    """Every (shots, fold) of the protocol: one row per metric."""
    features = np.asarray(features)
    if np.isnan(features).any():
        bad = [sample_ids[i] for i in np.flatnonzero(np.isnan(features).any(axis=1))[:3]]
        raise StoreError(f"{int(np.isnan(features).any(axis=1).sum())} image(s) have no features (failed to embed), "
                         f"e.g. {', '.join(bad)}: the study's draws need every row of the partition; fix or remove "
                         f"them and rebuild the manifest")
    parts = subsets(sample_ids)
    pool_labels = [int(v) for v in labels[parts.pool]]
    rows = []
    for k in shots:
        for fold in range(folds):
            split = fold_split(pool_labels, fold, shots_train=k,
                               shots_test="0%" if parts.test is not None else shots_test_pool,
                               shots_val=shots_val, balance=balance)
            train = parts.pool[split["train"]]
            test = parts.test if parts.test is not None else parts.pool[split["test"]]
            if len(np.unique(labels[train])) < 2 or len(test) == 0:
                log.warning("%s shots, fold %d: too few rows to train or test; skipped", k, fold)
                continue
            probs = linear_probe(features[train], labels[train], features[test], C=C, max_iter=max_iter)
            for metric, value in fold_metrics(labels[test], probs).items():
                rows.append(dict(shots=str(k), fold=fold, metric=metric, value=value, n_train=len(train),
                                 n_test=len(test), test_set="external" if parts.test is not None else "per fold"))
    return pd.DataFrame(rows)


def summarize_folds(values: Sequence[float]) -> tuple[float, float]:
    """The authors' average_folds_results: mean and np.std (ddof 0), rounded to 4 decimals."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.round(np.mean(values), 4)), float(np.round(np.std(values), 4))


def run_transfer(embeddings_path: str | Path, out_path: str | Path, *, dataset_id: str, model_id: str,
                 params: Mapping) -> pd.DataFrame:
    """The `transfer` rule."""
    emb = read_embeddings(embeddings_path)
    table = transfer_probe(emb.features, np.asarray(emb.labels), list(emb.sample_id), shots=params["shots"],
                           folds=params["folds"], shots_test_pool=params["shots_test_pool"],
                           shots_val=params.get("shots_val", "0%"), balance=params["balance"], C=params["C"],
                           max_iter=params["max_iter"])
    table.insert(0, "model", model_id)
    table.insert(0, "dataset", dataset_id)
    table = table.reindex(columns=TRANSFER_COLUMNS)
    files.write_tsv(out_path, table)
    for shots, part in table[table.metric == "aca"].groupby("shots", sort=False):
        mean, std = summarize_folds(part["value"])
        log.info("%s shots: ACA %.4f ± %.4f over %d folds (%s test set)", shots, mean, std, len(part),
                 part["test_set"].iloc[0])
    return table
