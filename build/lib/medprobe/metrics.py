"""How well a space keeps the classes apart and the neighbourhoods intact.

- trustworthiness of a 2-D layout (Venna & Kaski; scikit-learn's definition), on a fixed subsample when N is large.
  The original space's neighbour ranks are computed once per (model, dataset) and reused for all 50 layouts;
  scikit-learn's `trustworthiness` recomputes them for every call (tests check both give the same number).
- silhouette by class (scikit-learn), on the same subsample;
- leave-one-out kNN accuracy (majority of the k nearest, self excluded), on every sample.
In the feature space the metric is cosine; in a layout, Euclidean.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import pairwise_distances, silhouette_score
from sklearn.neighbors import NearestNeighbors


def subsample(n: int, size: int, seed: int = 0) -> np.ndarray:
    """A fixed, sorted subsample of row indices (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


class Trustworthiness:
    """Trustworthiness of any number of layouts against one original space."""

    def __init__(self, features: np.ndarray, rows: np.ndarray, n_neighbors: int = 15, metric: str = "cosine"):
        self.rows = rows
        self.k = n_neighbors
        n = len(rows)
        if not 2 * n - 3 * n_neighbors - 1 > 0:
            raise ValueError(f"trustworthiness needs n_neighbors < n/2 (n={n}, n_neighbors={n_neighbors})")
        dist = pairwise_distances(features[rows], metric=metric)
        np.fill_diagonal(dist, np.inf)
        order = np.argsort(dist, axis=1, kind="stable")
        self.rank = np.zeros((n, n), dtype=np.int32)  # rank[i, j]: j is the rank[i, j]-th neighbour of i
        self.rank[np.arange(n)[:, None], order] = np.arange(1, n + 1, dtype=np.int32)

    def __call__(self, layout: np.ndarray) -> float:
        n, k = len(self.rows), self.k
        nearest = NearestNeighbors(n_neighbors=k).fit(layout[self.rows]).kneighbors(return_distance=False)
        excess = self.rank[np.arange(n)[:, None], nearest].astype(np.int64) - k
        penalty = excess[excess > 0].sum()
        return float(1.0 - penalty * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))))


def knn_accuracy(neighbours: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out accuracy of the majority vote of each sample's neighbours (rows of indices, self excluded);
    ties go to the smallest label."""
    votes = labels[neighbours]
    n_classes = int(labels.max()) + 1
    counts = np.zeros((len(labels), n_classes), dtype=np.int32)
    np.add.at(counts, (np.repeat(np.arange(len(labels)), votes.shape[1]), votes.ravel()), 1)
    return float((counts.argmax(axis=1) == labels).mean())


def layout_knn_accuracy(layout: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    neighbours = NearestNeighbors(n_neighbors=k).fit(layout).kneighbors(return_distance=False)
    return knn_accuracy(neighbours, labels)


def silhouette(points: np.ndarray, labels: np.ndarray, metric: str = "euclidean") -> float:
    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(labels):
        return float("nan")
    return float(silhouette_score(points, labels, metric=metric))
