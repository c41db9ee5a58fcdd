"""UMAP sweeps: every (n_neighbors, min_dist) layout of one embedding file, and how good each one is.

The naive sweep is 50 independent umap-learn fits. Here, per (model, dataset):
  1. one exact cosine kNN at k_max = min(max n_neighbors, N - 1), by blocked matrix products in torch;
  2. per distinct n_neighbors k: umap-learn's own fuzzy_simplicial_set on I[:, :k], D[:, :k], the same pruning,
     spectral initialisation and random state as UMAP.fit — built once and reused for every min_dist;
  3. per k: every min_dist's layout optimised together (medprobe.umap_optimize, or umap-learn's own one by one with
     optimizer: umap-learn); the n_neighbors values are spread over `threads` worker processes.
With optimizer umap-learn, each layout equals UMAP(n_neighbors=k, min_dist=d, random_state=seed,
precomputed_knn=(I[:, :k], D[:, :k])).fit_transform(X) bit for bit (tests check it). Deterministic for a fixed seed:
each layout depends only on its own inputs, never on the worker that ran it.

results/umap/{dataset}/{model}/layouts.h5
    /layouts float32 (n_neighbors, min_dist, N, 2); /n_neighbors, /n_neighbors_effective (after clipping to N - 1),
    /min_dist; /labels, /sample_id (rows with NaN features are left out)
    attrs: metric, seed, n_samples, clipped (JSON), class_names (JSON), dataset_id, model_id, optimizer,
           umap_version, numba_version, torch_version, medprobe_version, embeddings_sha256, seconds (JSON)
results/umap/{dataset}/{model}/metrics.tsv
    one row per layout (space umap) and one for the feature space itself (space features): trustworthiness,
    silhouette by class, leave-one-out kNN accuracy
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np
import pandas as pd

import medprobe
from medprobe import files as mpfiles
from medprobe.errors import StoreError
from medprobe.umap_settings import SPREAD, settings_problems
from medprobe.files import atomic_path, file_sha256
from medprobe.store import STRING, read_embeddings

log = logging.getLogger(__name__)

OPTIMIZERS = ("medprobe", "umap-learn")
METRIC_COLUMNS = ["dataset", "model", "space", "n_neighbors", "n_neighbors_effective", "min_dist",
                  "trustworthiness", "silhouette", "knn_accuracy", "n_samples", "metric_sample"]


@dataclass
class Sweep:
    layouts: np.ndarray                 # (n_nn, n_md, N, 2)
    n_neighbors: list[int]
    n_neighbors_effective: list[int]
    min_dist: list[float]
    labels: np.ndarray
    sample_id: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def clipped(self) -> dict[int, int]:
        return {k: e for k, e in zip(self.n_neighbors, self.n_neighbors_effective) if k != e}


@dataclass
class FuzzyGraph:
    """What the layout optimisation of one n_neighbors needs, for every min_dist."""

    head: np.ndarray
    tail: np.ndarray
    epochs_per_sample: np.ndarray
    init: np.ndarray
    rng_state: np.ndarray
    n_epochs: int


def effective_neighbors(n_neighbors: Sequence[int], n_samples: int) -> list[int]:
    """n_neighbors >= N cannot be honoured: clip to N - 1 (umap-learn would otherwise quietly change the method)."""
    if n_samples < 3:
        raise StoreError(f"UMAP needs at least 3 samples, got {n_samples}")
    return [min(int(k), n_samples - 1) for k in n_neighbors]


def nearest_neighbors(features: np.ndarray, k: int, *, metric: str = "cosine", block_bytes: int = 256 << 20
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN (self first, distance 0) by blocked matrix products: indices int32 (N, k), distances float32.
    cosine distance = 1 - cosine similarity (umap-learn's); euclidean as well."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    n = x.shape[0]
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    elif metric != "euclidean":
        raise StoreError(f"umap.metric {metric!r} is not supported by the exact kNN (cosine, euclidean)")
    squared = (x * x).sum(dim=1)
    rows = max(1, min(n, block_bytes // (4 * n)))
    indices = np.empty((n, k), dtype=np.int32)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        sims = x[start:stop] @ x.T
        if metric == "euclidean":  # rank by -||a - b||^2 = 2ab - |b|^2 (-|a|^2 is constant per row)
            sims = 2 * sims - squared[None, :]
        sims[torch.arange(stop - start), torch.arange(start, stop)] = float("inf")  # self first, even among copies
        top, idx = torch.topk(sims, k, dim=1)
        if metric == "cosine":
            dist = (1.0 - top).clamp_min_(0.0)
        else:  # the expanded form loses near-duplicates to cancellation: measure the chosen pairs directly
            dist = torch.empty_like(top)
            step = max(1, block_bytes // (4 * k * x.shape[1]))
            for first in range(start, stop, step):
                last = min(stop, first + step)
                diff = x[first:last, None, :] - x[idx[first - start:last - start]]
                dist[first - start:last - start] = torch.linalg.vector_norm(diff, dim=2)
        dist[:, 0] = 0.0
        indices[start:stop] = idx.numpy()
        distances[start:stop] = dist.numpy()
    return indices, distances


def fuzzy_graph(features: np.ndarray, knn_indices: np.ndarray, knn_dists: np.ndarray, k: int, *,
                metric: str = "cosine", seed: int = 42) -> FuzzyGraph:
    """umap-learn's own steps of UMAP.fit up to the optimisation (graph, pruning, spectral init, random state)."""
    from umap.spectral import spectral_layout
    from umap.umap_ import (INT32_MAX, INT32_MIN, fuzzy_simplicial_set, make_epochs_per_sample,
                            noisy_scale_coords)

    _use_forkable_threading_layer()
    random_state = np.random.RandomState(seed)
    graph, _, _ = fuzzy_simplicial_set(features, k, random_state, metric, knn_indices=knn_indices[:, :k],
                                       knn_dists=knn_dists[:, :k])
    graph = graph.tocoo()
    graph.sum_duplicates()
    n_epochs = 500 if graph.shape[0] <= 10000 else 200
    graph.data[graph.data < (graph.data.max() / float(n_epochs))] = 0.0
    graph.eliminate_zeros()
    init = spectral_layout(features, graph, 2, random_state, metric=metric)
    init = noisy_scale_coords(init, random_state, max_coord=10, noise=0.0001)
    epochs_per_sample = make_epochs_per_sample(graph.data, n_epochs)
    rng_state = random_state.randint(INT32_MIN, INT32_MAX, 3).astype(np.int64)
    init = (10.0 * (init - np.min(init, 0)) / (np.max(init, 0) - np.min(init, 0))).astype(np.float32, order="C")
    return FuzzyGraph(head=graph.row, tail=graph.col, epochs_per_sample=epochs_per_sample, init=init,
                      rng_state=rng_state, n_epochs=n_epochs)


def layouts_from_graph(graph: FuzzyGraph, min_dists: Sequence[float], optimizer: str = "medprobe") -> np.ndarray:
    """The layouts (len(min_dists), N, 2) of one fuzzy graph."""
    from umap.umap_ import find_ab_params

    ab = [find_ab_params(SPREAD, float(d)) for d in min_dists]
    if optimizer == "medprobe":
        from medprobe.umap_optimize import optimize_layouts

        return optimize_layouts(graph.init, graph.head, graph.tail, graph.epochs_per_sample, graph.n_epochs, ab,
                                graph.rng_state)
    from umap.layouts import optimize_layout_euclidean

    out = []
    for a, b in ab:
        embedding = graph.init.copy()
        out.append(optimize_layout_euclidean(embedding, embedding, graph.head, graph.tail, graph.n_epochs,
                                             embedding.shape[0], graph.epochs_per_sample, a, b,
                                             graph.rng_state.copy(), 1.0, 1.0, 5, parallel=False, verbose=False,
                                             densmap=False, densmap_kwds={}, tqdm_kwds={"disable": True},
                                             move_other=True))
    return np.stack(out)


# Worker processes are forked after these are set, so the features and the kNN are shared, never pickled.
_SHARED: dict[str, Any] = {}


def _use_forkable_threading_layer() -> None:
    """numba's OpenMP layer cannot survive a fork once used; its workqueue layer can. Chosen before any parallel
    numba code runs in this process (umap-learn's fuzzy graph is parallel numba)."""
    import numba
    from numba.np.ufunc import parallel

    if not parallel._is_initialized:
        numba.config.THREADING_LAYER = "workqueue"


def _fork_is_safe() -> bool:
    import numba
    from numba.np.ufunc import parallel

    return not parallel._is_initialized or numba.threading_layer() != "omp"


def _worker_init(shared: dict | None = None) -> None:
    import numba
    from threadpoolctl import threadpool_limits

    if shared is not None:  # a fresh (forkserver) worker: it gets the inputs once, pickled
        _SHARED.update(shared)
    numba.set_num_threads(1)
    threadpool_limits(1)


def _task(k: int) -> tuple[int, np.ndarray, float, float]:
    """One n_neighbors: its fuzzy graph, then every min_dist's layout."""
    start = time.perf_counter()
    graph = fuzzy_graph(_SHARED["features"], _SHARED["knn_i"], _SHARED["knn_d"], k, metric=_SHARED["metric"],
                        seed=_SHARED["seed"])
    built = time.perf_counter()
    layouts = layouts_from_graph(graph, _SHARED["min_dist"], _SHARED["optimizer"])
    return k, layouts, built - start, time.perf_counter() - built


def _run(tasks, function, threads: int):
    if threads <= 1 or len(tasks) <= 1:
        return [function(task) for task in tasks]
    if _fork_is_safe():  # forked workers share the inputs without copying them
        context, args = get_context("fork"), (None,)
    else:  # this process already ran numba's OpenMP pool: start clean workers instead
        log.info("numba's OpenMP threading layer is active in this process: starting clean worker processes")
        context, args = get_context("forkserver"), (dict(_SHARED),)
    with ProcessPoolExecutor(max_workers=min(threads, len(tasks)), mp_context=context, initializer=_worker_init,
                             initargs=args) as pool:
        return list(pool.map(function, tasks))


def _warm_up(optimizer: str) -> None:
    """Compile the (serial) layout optimiser once in the parent, so forked workers inherit it. umap-learn's
    parallel numba code (the fuzzy graph) must not run in the parent before a fork: its OpenMP pool is not
    fork-safe, so the graphs are built in the workers."""
    if optimizer != "medprobe":
        return
    from medprobe.umap_optimize import optimize_layouts

    rng = np.random.default_rng(0)
    head = np.arange(9, dtype=np.int32)
    optimize_layouts(rng.normal(size=(10, 2)).astype(np.float32), head, head + 1, np.full(9, 1.5), 5,
                     [(1.6, 0.9)], np.array([1, 2, 3], dtype=np.int64))


def sweep_layouts(features: np.ndarray, n_neighbors: Sequence[int], min_dist: Sequence[float], *,
                  metric: str = "cosine", seed: int = 42, threads: int = 1, optimizer: str = "medprobe"
                  ) -> tuple[np.ndarray, list[int], dict[str, float]]:
    """All layouts (n_neighbors, min_dist, N, 2), the clipped n_neighbors, and where the time went."""
    if optimizer not in OPTIMIZERS:
        raise StoreError(f"umap.optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    features = np.ascontiguousarray(features, dtype=np.float32)
    n = len(features)
    effective = effective_neighbors(n_neighbors, n)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    knn_i, knn_d = nearest_neighbors(features, max(effective), metric=metric)
    seconds["knn"] = time.perf_counter() - start
    _use_forkable_threading_layer()
    _warm_up(optimizer)
    distinct_md = list(dict.fromkeys(float(d) for d in min_dist))
    _SHARED.update(features=features, knn_i=knn_i, knn_d=knn_d, metric=metric, seed=seed, optimizer=optimizer,
                   min_dist=distinct_md)
    try:
        start = time.perf_counter()
        unique_k = sorted(set(effective), reverse=True)  # largest first: the longest tasks start first
        results = _run(unique_k, _task, threads)
        seconds["graphs_and_layouts"] = time.perf_counter() - start
        seconds["graphs_cpu"] = float(sum(r[2] for r in results))
        seconds["layouts_cpu"] = float(sum(r[3] for r in results))
    finally:
        _SHARED.clear()
    done = {k: layouts for k, layouts, _, _ in results}
    layouts = np.empty((len(n_neighbors), len(min_dist), n, 2), dtype=np.float32)
    for i, k in enumerate(effective):
        for j, d in enumerate(min_dist):
            layouts[i, j] = done[k][distinct_md.index(float(d))]
    return layouts, effective, seconds


def layout_metrics(features: np.ndarray, labels: np.ndarray, layouts: np.ndarray, n_neighbors: Sequence[int],
                   effective: Sequence[int], min_dist: Sequence[float], *, metric: str = "cosine",
                   trust_neighbors: int = 15, knn_k: int = 10, sample_size: int = 3000, seed: int = 0
                   ) -> pd.DataFrame:
    """One row per layout plus one for the feature space (silhouette and kNN accuracy there use `metric`)."""
    from medprobe.metrics import Trustworthiness, knn_accuracy, layout_knn_accuracy, silhouette, subsample

    rows_sample = subsample(len(features), sample_size, seed)
    trust = Trustworthiness(features, rows_sample, n_neighbors=min(trust_neighbors, (len(rows_sample) - 2) // 3),
                            metric=metric)
    k = min(knn_k, len(features) - 1)
    feature_neighbours = nearest_neighbors(features, k + 1, metric=metric)[0][:, 1:]
    rows = [dict(space="features", n_neighbors=None, n_neighbors_effective=None, min_dist=None,
                 trustworthiness=None, silhouette=silhouette(features[rows_sample], labels[rows_sample], metric),
                 knn_accuracy=knn_accuracy(feature_neighbours, labels))]
    for i, (requested, used) in enumerate(zip(n_neighbors, effective)):
        for j, d in enumerate(min_dist):
            layout = layouts[i, j]
            rows.append(dict(space="umap", n_neighbors=int(requested), n_neighbors_effective=int(used),
                             min_dist=float(d), trustworthiness=trust(layout),
                             silhouette=silhouette(layout[rows_sample], labels[rows_sample]),
                             knn_accuracy=layout_knn_accuracy(layout, labels, k)))
    table = pd.DataFrame(rows)
    table["n_samples"] = len(features)
    table["metric_sample"] = len(rows_sample)
    return table


def run_sweep(embeddings_path: str | Path, out_path: str | Path, out_metrics: str | Path | None = None, *,
              n_neighbors: Sequence[int], min_dist: Sequence[float], metric: str = "cosine", seed: int = 42,
              threads: int = 1, optimizer: str = "medprobe", metrics: dict | None = None) -> Sweep:
    """The `umap_sweep` rule."""
    problems = settings_problems(n_neighbors, min_dist)
    if problems:
        raise ValueError("; ".join(problems))
    import numba
    import torch
    import umap

    emb = read_embeddings(embeddings_path)
    valid = emb.valid_rows()
    if not valid.all():
        log.warning("%s: %d row(s) with NaN features (failed images) left out of the layouts",
                    embeddings_path, int((~valid).sum()))
    features = emb.features[valid]
    torch.set_num_threads(max(1, threads))
    start = time.perf_counter()
    layouts, effective, seconds = sweep_layouts(features, n_neighbors, min_dist, metric=metric, seed=seed,
                                                threads=threads, optimizer=optimizer)
    log.info("%d layouts of %d points in %.1f s (kNN %.1f s; graphs %.1f s CPU and layouts %.1f s CPU over %d "
             "worker(s): %.1f s)", layouts.shape[0] * layouts.shape[1], len(features), time.perf_counter() - start,
             seconds["knn"], seconds["graphs_cpu"], seconds["layouts_cpu"], threads, seconds["graphs_and_layouts"])
    sweep = Sweep(layouts=layouts, n_neighbors=[int(k) for k in n_neighbors], n_neighbors_effective=effective,
                  min_dist=[float(d) for d in min_dist], labels=emb.labels[valid], sample_id=emb.sample_id[valid],
                  attrs={"metric": metric, "seed": int(seed), "n_samples": int(len(features)),
                         "class_names": emb.class_names, "dataset_id": emb.attrs["dataset_id"],
                         "model_id": emb.attrs["model_id"], "optimizer": optimizer, "umap_version": umap.__version__,
                         "numba_version": numba.__version__, "torch_version": str(torch.__version__),
                         "medprobe_version": medprobe.__version__,
                         "embeddings_sha256": file_sha256(embeddings_path)})
    sweep.attrs["clipped"] = {str(k): e for k, e in sweep.clipped.items()}
    for k, e in sweep.clipped.items():
        log.info("n_neighbors=%d clipped to %d (N=%d)", k, e, len(features))
    write_layouts(out_path, sweep)
    if out_metrics:
        start = time.perf_counter()
        table = layout_metrics(features, sweep.labels, layouts, sweep.n_neighbors, effective, sweep.min_dist,
                               metric=metric, **(metrics or {}))
        table.insert(0, "model", emb.attrs["model_id"])
        table.insert(0, "dataset", emb.attrs["dataset_id"])
        mpfiles.write_tsv(out_metrics, table[METRIC_COLUMNS])
        log.info("metrics of %d layouts in %.1f s", len(table) - 1, time.perf_counter() - start)
    return sweep


def write_layouts(path: str | Path, sweep: Sweep) -> None:
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("layouts", data=sweep.layouts)
            handle.create_dataset("n_neighbors", data=np.asarray(sweep.n_neighbors, dtype=np.int64))
            handle.create_dataset("n_neighbors_effective",
                                  data=np.asarray(sweep.n_neighbors_effective, dtype=np.int64))
            handle.create_dataset("min_dist", data=np.asarray(sweep.min_dist, dtype=np.float64))
            handle.create_dataset("labels", data=np.asarray(sweep.labels, dtype=np.int64))
            handle.create_dataset("sample_id", data=np.asarray(list(sweep.sample_id), dtype=object), dtype=STRING)
            for key, value in sweep.attrs.items():
                handle.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value


def read_layouts(path: str | Path) -> Sweep:
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: layouts file not found; run the umap_sweep rule for it")
    with h5py.File(path, "r") as handle:
        attrs: dict[str, Any] = {}
        for key, value in handle.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            if key in ("clipped", "class_names") and isinstance(value, str):
                value = json.loads(value)
            attrs[key] = value.item() if isinstance(value, np.generic) else value
        return Sweep(layouts=handle["layouts"][...], n_neighbors=handle["n_neighbors"][...].tolist(),
                     n_neighbors_effective=handle["n_neighbors_effective"][...].tolist(),
                     min_dist=handle["min_dist"][...].tolist(), labels=handle["labels"][...],
                     sample_id=handle["sample_id"].asstr()[...], attrs=attrs)


def read_metrics(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


__all__ = ["Sweep", "effective_neighbors", "nearest_neighbors", "fuzzy_graph",
           "sweep_layouts", "layout_metrics", "run_sweep", "read_layouts", "write_layouts", "layouts_from_graph"]
