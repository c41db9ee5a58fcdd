"""UMAP sweeps: every (n_neighbors, min_dist) layout of one embedding file, in one HDF5 file.

results/umap/{dataset}/{model}/layouts.h5
    /layouts              float32 (n_neighbors, min_dist, N, 2)
    /n_neighbors          int64 requested values        /n_neighbors_effective  int64 after clipping to N - 1
    /min_dist             float64
    /labels, /sample_id   the rows that were laid out (rows with NaN features are left out)
    attrs: metric, seed, n_samples, clipped (JSON: requested -> effective), class_names (JSON), dataset_id,
           model_id, umap_version, numba_version, medprobe_version, embeddings_sha256

A setting whose clipped n_neighbors equals another's is fitted once: same inputs, same seed, same layout.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

import medprobe
from medprobe.files import atomic_path, file_sha256
from medprobe.errors import StoreError
from medprobe.store import STRING, read_embeddings

log = logging.getLogger(__name__)


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


def effective_neighbors(n_neighbors: Sequence[int], n_samples: int) -> list[int]:
    """n_neighbors >= N cannot be honoured: clip to N - 1 (umap-learn would otherwise quietly change the method)."""
    if n_samples < 3:
        raise StoreError(f"UMAP needs at least 3 samples, got {n_samples}")
    return [min(int(k), n_samples - 1) for k in n_neighbors]


def fit_layout(features: np.ndarray, n_neighbors: int, min_dist: float, metric: str, seed: int) -> np.ndarray:
    import umap

    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, random_state=seed,
                        n_components=2, n_jobs=1)
    return reducer.fit_transform(features).astype(np.float32)


def sweep_layouts(features: np.ndarray, n_neighbors: Sequence[int], min_dist: Sequence[float], *,
                  metric: str = "cosine", seed: int = 42) -> tuple[np.ndarray, list[int]]:
    n = len(features)
    effective = effective_neighbors(n_neighbors, n)
    layouts = np.empty((len(n_neighbors), len(min_dist), n, 2), dtype=np.float32)
    fitted: dict[tuple[int, float], np.ndarray] = {}
    for i, k in enumerate(effective):
        for j, d in enumerate(min_dist):
            key = (k, float(d))
            if key not in fitted:
                start = time.perf_counter()
                fitted[key] = fit_layout(features, k, float(d), metric, seed)
                log.info("n_neighbors=%d min_dist=%g: %.1f s", k, d, time.perf_counter() - start)
            layouts[i, j] = fitted[key]
    return layouts, effective


def run_sweep(embeddings_path: str | Path, out_path: str | Path, *, n_neighbors: Sequence[int],
              min_dist: Sequence[float], metric: str = "cosine", seed: int = 42) -> Sweep:
    """The `umap_sweep` rule."""
    import numba
    import umap

    emb = read_embeddings(embeddings_path)
    valid = emb.valid_rows()
    if not valid.all():
        log.warning("%s: %d row(s) with NaN features (failed images) left out of the layouts",
                    embeddings_path, int((~valid).sum()))
    features = emb.features[valid]
    start = time.perf_counter()
    layouts, effective = sweep_layouts(features, n_neighbors, min_dist, metric=metric, seed=seed)
    log.info("%d layouts of %d points in %.1f s", layouts.shape[0] * layouts.shape[1], len(features),
             time.perf_counter() - start)
    sweep = Sweep(layouts=layouts, n_neighbors=[int(k) for k in n_neighbors], n_neighbors_effective=effective,
                  min_dist=[float(d) for d in min_dist], labels=emb.labels[valid], sample_id=emb.sample_id[valid],
                  attrs={"metric": metric, "seed": int(seed), "n_samples": int(len(features)),
                         "class_names": emb.class_names, "dataset_id": emb.attrs["dataset_id"],
                         "model_id": emb.attrs["model_id"], "umap_version": umap.__version__,
                         "numba_version": numba.__version__, "medprobe_version": medprobe.__version__,
                         "embeddings_sha256": file_sha256(embeddings_path)})
    sweep.attrs["clipped"] = {str(k): e for k, e in sweep.clipped.items()}
    for k, e in sweep.clipped.items():
        log.info("n_neighbors=%d clipped to %d (N=%d)", k, e, len(features))
    write_layouts(out_path, sweep)
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
