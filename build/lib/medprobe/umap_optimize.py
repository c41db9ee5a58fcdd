"""UMAP's layout optimisation (umap-learn's optimize_layout_euclidean) for several min_dist at once, visiting only
the edges that are due.

Two observations make the sweep cheap without changing the algorithm:
- umap-learn loops over every edge of the fuzzy graph in every epoch and skips those not due for a sample; at
  n_neighbors 500-1000 that is ~700 M visits for ~25 M samples (N = 2,870). Here each edge's sample epochs are
  listed once (umap-learn's own float64 recurrence), then every epoch runs exactly its due edges, in edge order.
- For one n_neighbors, the layouts of every min_dist start from the same initialisation and random state and walk
  the same schedule, so they draw the same negative samples: only a and b differ. They are optimised in lockstep —
  one pass over the schedule and one random draw serve all of them, each keeping its own coordinates.
The gradient, clipping (to [-4, 4]), per-vertex random state and negative sampling are umap-learn's, computed in
float32 with one power per sample (d^(b-1) = d^b / d). Compiled without fast-math, so results are reproducible;
each layout equals the same kernel run for that min_dist alone (tests check it). benchmarks/umap_sweep.py measures
speed and trustworthiness against umap-learn.
"""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np
from umap.utils import tau_rand_int


@numba.njit(cache=True)
def sample_schedule(epochs_per_sample: np.ndarray, n_epochs: int):
    """(offsets, edges): the edges sampled in epoch n are edges[offsets[n]:offsets[n + 1]], in index order."""
    counts = np.zeros(n_epochs + 1, dtype=np.int64)
    for i in range(epochs_per_sample.shape[0]):
        step = epochs_per_sample[i]
        if step <= 0:
            continue
        due = step
        while True:
            epoch = int(np.ceil(due))  # umap-learn samples at the first epoch n with due <= n
            if epoch >= n_epochs:
                break
            counts[epoch + 1] += 1
            due += step
    for n in range(n_epochs):
        counts[n + 1] += counts[n]
    edges = np.empty(counts[n_epochs], dtype=np.int32)
    fill = counts[:-1].copy()
    for i in range(epochs_per_sample.shape[0]):
        step = epochs_per_sample[i]
        if step <= 0:
            continue
        due = step
        while True:
            epoch = int(np.ceil(due))
            if epoch >= n_epochs:
                break
            edges[fill[epoch]] = i
            fill[epoch] += 1
            due += step
    return counts, edges


@numba.njit(cache=True)
def _run_epochs(embedding, head, tail, n_vertices, epochs_per_sample, a, b, rng_state_per_sample, gamma,
                initial_alpha, negative_sample_rate, n_epochs, offsets, edges):
    """embedding (N, M, 2): M layouts (one per (a, b)) optimised in lockstep; 2-D, move_other, no densMAP."""
    n_layouts = embedding.shape[1]
    epochs_per_negative_sample = epochs_per_sample / negative_sample_rate
    epoch_of_next_negative_sample = epochs_per_negative_sample.copy()
    alpha = initial_alpha
    four = np.float32(4.0)
    one = np.float32(1.0)
    attract = np.float32(-2.0) * a * b
    repel = np.float32(2.0) * gamma * b
    for n in range(n_epochs):
        for s in range(offsets[n], offsets[n + 1]):
            i = edges[s]
            j = head[i]
            k = tail[i]
            for m in range(n_layouts):
                dx = embedding[j, m, 0] - embedding[k, m, 0]
                dy = embedding[j, m, 1] - embedding[k, m, 1]
                dist_squared = dx * dx + dy * dy
                if dist_squared > 0.0:
                    power = dist_squared ** b[m]
                    grad_coeff = attract[m] * (power / dist_squared) / (a[m] * power + one)
                else:
                    grad_coeff = np.float32(0.0)
                step_x = min(max(grad_coeff * dx, -four), four) * alpha
                step_y = min(max(grad_coeff * dy, -four), four) * alpha
                embedding[j, m, 0] += step_x
                embedding[j, m, 1] += step_y
                embedding[k, m, 0] -= step_x
                embedding[k, m, 1] -= step_y
            n_neg_samples = int((n - epoch_of_next_negative_sample[i]) / epochs_per_negative_sample[i])
            for p in range(n_neg_samples):
                k = tau_rand_int(rng_state_per_sample[j]) % n_vertices
                if k == j:
                    continue
                for m in range(n_layouts):
                    dx = embedding[j, m, 0] - embedding[k, m, 0]
                    dy = embedding[j, m, 1] - embedding[k, m, 1]
                    dist_squared = dx * dx + dy * dy
                    if dist_squared > 0.0:
                        grad_coeff = repel[m] / ((np.float32(0.001) + dist_squared)
                                                 * (a[m] * dist_squared ** b[m] + one))
                        embedding[j, m, 0] += min(max(grad_coeff * dx, -four), four) * alpha
                        embedding[j, m, 1] += min(max(grad_coeff * dy, -four), four) * alpha
            epoch_of_next_negative_sample[i] += n_neg_samples * epochs_per_negative_sample[i]
        alpha = initial_alpha * (one - np.float32(n) / np.float32(n_epochs))
    return embedding


def optimize_layouts(init: np.ndarray, head: np.ndarray, tail: np.ndarray, epochs_per_sample: np.ndarray,
                     n_epochs: int, ab: Sequence[tuple[float, float]], rng_state: np.ndarray, *, gamma: float = 1.0,
                     initial_alpha: float = 1.0, negative_sample_rate: float = 5.0) -> np.ndarray:
    """Layouts (M, N, 2), one per (a, b), as umap-learn's optimize_layout_euclidean(move_other=True) from `init`."""
    init = np.asarray(init, dtype=np.float32)
    if init.ndim != 2 or init.shape[1] != 2:
        raise ValueError(f"the optimiser lays out in 2-D; got an initial layout of shape {init.shape}")
    embedding = np.ascontiguousarray(np.repeat(init[:, None, :], len(ab), axis=1))
    # umap-learn's per-vertex random state: the shared state offset by the bits of the vertex's first coordinate
    rng_per_vertex = (np.full((init.shape[0], len(rng_state)), rng_state, dtype=np.int64)
                      + init[:, 0].astype(np.float64).view(np.int64).reshape(-1, 1))
    epochs = np.asarray(epochs_per_sample, dtype=np.float64)
    offsets, edges = sample_schedule(epochs, int(n_epochs))
    a = np.array([x for x, _ in ab], dtype=np.float32)
    b = np.array([y for _, y in ab], dtype=np.float32)
    out = _run_epochs(embedding, head.astype(np.int32), tail.astype(np.int32), init.shape[0], epochs, a, b,
                      rng_per_vertex, np.float32(gamma), np.float32(initial_alpha), np.float32(negative_sample_rate),
                      int(n_epochs), offsets, edges)
    return np.ascontiguousarray(out.transpose(1, 0, 2))
