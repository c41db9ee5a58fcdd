"""Is model A really better than model B on this dataset? A paired permutation test on the shared hold-out.

Every model's fold models predict the same hold-out images (one split per dataset). For each image, d_i = A's
share of correct fold predictions minus B's. Under the null hypothesis that A and B are exchangeable, each d_i's
sign is a coin flip; the p-value is the share of random sign assignments (fixed seed) whose |mean| reaches the
observed |mean d| (two-sided, with the observed one counted). p-values are Holm-adjusted over all pairs of a dataset.

results/tables/paired/{dataset}.tsv: model_a, model_b, accuracy_a, accuracy_b, difference_pp, n_eval, p_value, p_holm
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from medprobe import files
from medprobe.errors import StoreError

PAIRED_COLUMNS = ["dataset", "model_a", "model_b", "accuracy_a", "accuracy_b", "difference_pp", "n_eval", "p_value",
                  "p_holm"]


def correct_share(predictions: pd.DataFrame) -> pd.Series:
    """Per hold-out sample: the share of fold models that predict its label."""
    hit = (predictions["prediction"] == predictions["label"]).astype(float)
    return hit.groupby(predictions["sample_id"]).mean().sort_index()


def sign_flip_test(differences: np.ndarray, n_permutations: int = 10000, seed: int = 0) -> float:
    differences = np.asarray(differences, dtype=np.float64)
    observed = abs(differences.mean())
    if observed == 0.0:
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, len(differences)))
    null = np.abs(signs @ differences) / len(differences)
    return float((1 + np.sum(null >= observed - 1e-12)) / (n_permutations + 1))


def holm(p_values: Sequence[float]) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p) - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def paired_tests(predictions: Mapping[str, pd.DataFrame], *, dataset_id: str, n_permutations: int = 10000,
                 seed: int = 0) -> pd.DataFrame:
    shares = {model: correct_share(table) for model, table in predictions.items()}
    rows = []
    for a, b in combinations(predictions, 2):
        if not shares[a].index.equals(shares[b].index):
            raise StoreError(f"dataset '{dataset_id}': models {a} and {b} were scored on different hold-out images; "
                             f"rerun their probes on the same split")
        diff = shares[a].to_numpy() - shares[b].to_numpy()
        rows.append(dict(dataset=dataset_id, model_a=a, model_b=b, accuracy_a=float(shares[a].mean()),
                         accuracy_b=float(shares[b].mean()), difference_pp=100.0 * float(diff.mean()),
                         n_eval=len(diff), p_value=sign_flip_test(diff, n_permutations, seed)))
    table = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    if len(table):
        table["p_holm"] = holm(table["p_value"])
    return table


def run_paired(prediction_paths: Mapping[str, str | Path], out_path: str | Path, *, dataset_id: str,
               n_permutations: int = 10000, seed: int = 0) -> pd.DataFrame:
    """The `paired_tests` rule: every configured model's hold-out predictions on one dataset."""
    tables = {model: pd.read_csv(path, sep="\t", dtype={"sample_id": str}) for model, path in prediction_paths.items()}
    table = paired_tests(tables, dataset_id=dataset_id, n_permutations=n_permutations, seed=seed)
    files.write_tsv(out_path, table)
    return table
