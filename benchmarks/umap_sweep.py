"""UMAP sweep speed and quality: the naive sweep (one umap-learn fit per setting) against medprobe's.

    python benchmarks/umap_sweep.py --n 2870 --dim 768
    python benchmarks/umap_sweep.py --n 28160 --dim 1024 --classes 29
    python benchmarks/umap_sweep.py --h5 results/embeddings/brainmr/pixels.h5

Features are synthetic (a Gaussian mixture, --classes clusters in --dim dimensions) unless --h5 names an embedding
file. The naive time is measured for every setting (--naive measure, the default up to N = 5,000) or extrapolated
from one measured fit per n_neighbors at the first min_dist, times the number of min_dist values (--naive
extrapolate). Trustworthiness (cosine, 15 neighbours) of both is computed on the same fixed subsample, over the
settings both have. The last line reads `speedup=<x> trustworthiness_delta=<mean of medprobe - naive>`.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from medprobe.metrics import Trustworthiness, subsample  # noqa: E402
from medprobe.umap_sweep import effective_neighbors, sweep_layouts  # noqa: E402

GRID_NN = [3, 5, 10, 15, 25, 50, 100, 200, 500, 1000]
GRID_MD = [0.1, 0.25, 0.5, 0.75, 1.0]


def synthetic(n: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clusters on a low-dimensional manifold embedded in `dim` dimensions, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    latent = rng.normal(size=(classes, 16)) * 2.0
    points = latent[labels] + rng.normal(size=(n, 16))
    lift = rng.normal(size=(16, dim)) / 4.0
    return (points @ lift + 0.3 * rng.normal(size=(n, dim))).astype(np.float32), labels


def naive_fit(features: np.ndarray, k: int, min_dist: float, seed: int) -> np.ndarray:
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return umap.UMAP(n_neighbors=k, min_dist=min_dist, metric="cosine", random_state=seed).fit_transform(
            features).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2870)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--h5", type=Path, help="an embedding file instead of synthetic features")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--optimizer", default="medprobe", choices=["medprobe", "umap-learn"])
    parser.add_argument("--naive", choices=["auto", "measure", "extrapolate"], default="auto")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    if args.h5:
        from medprobe.store import read_embeddings

        emb = read_embeddings(args.h5)
        keep = emb.valid_rows()
        features, labels, source = emb.features[keep], emb.labels[keep], str(args.h5)
    else:
        features, labels = synthetic(args.n, args.dim, args.classes)
        source = f"synthetic: {args.n} x {args.dim}, {args.classes} clusters"
    n = len(features)
    effective = effective_neighbors(GRID_NN, n)
    mode = args.naive if args.naive != "auto" else ("measure" if n <= 5000 else "extrapolate")
    print(f"# {source}; grid {len(GRID_NN)} n_neighbors x {len(GRID_MD)} min_dist, cosine; "
          f"{args.threads} thread(s); optimizer {args.optimizer}")

    # medprobe's sweep first: umap-learn's OpenMP pool (used by the naive fits) must not exist before it forks
    start = time.perf_counter()
    layouts, _, seconds = sweep_layouts(features, GRID_NN, GRID_MD, metric="cosine", seed=args.seed,
                                        threads=args.threads, optimizer=args.optimizer)
    ours = time.perf_counter() - start
    print(f"medprobe sweep: {ours:.0f} s (kNN {seconds['knn']:.1f} s; graphs {seconds['graphs_cpu']:.1f} s CPU and "
          f"layouts {seconds['layouts_cpu']:.1f} s CPU over {args.threads} worker(s): "
          f"{seconds['graphs_and_layouts']:.1f} s)", flush=True)

    # numba compilation is not part of either sweep: warm up the naive path that this N takes (exact distances
    # below 4,096 points, NN-descent above)
    naive_fit(features[: min(n, 4500 if n > 4096 else 300)], 15, 0.1, args.seed)
    naive: dict[tuple[int, float], np.ndarray] = {}
    naive_seconds = 0.0
    for k in dict.fromkeys(effective):
        for d in (GRID_MD if mode == "measure" else GRID_MD[:1]):
            start = time.perf_counter()
            naive[(k, d)] = naive_fit(features, k, d, args.seed)
            took = time.perf_counter() - start
            naive_seconds += took * (1 if mode == "measure" else len(GRID_MD))
            print(f"naive fit n_neighbors={k} min_dist={d}: {took:.1f} s", flush=True)
    repeats = sum(effective.count(k) - 1 for k in dict.fromkeys(effective))
    naive_seconds *= len(GRID_NN) / (len(GRID_NN) - repeats)  # clipped duplicates are full fits in a naive sweep
    label = "measured" if mode == "measure" else "extrapolated from one measured fit per n_neighbors"
    print(f"naive sweep: {naive_seconds:.0f} s ({label}; {len(GRID_NN) * len(GRID_MD)} fits)")

    rows = subsample(n, 3000, seed=0)
    trust = Trustworthiness(features, rows, n_neighbors=15, metric="cosine")
    deltas, t_naive, t_ours = [], [], []
    for (k, d), layout in naive.items():
        i, j = effective.index(k), GRID_MD.index(d)
        t_naive.append(trust(layout))
        t_ours.append(trust(layouts[i, j]))
        deltas.append(t_ours[-1] - t_naive[-1])
    print(f"trustworthiness on a fixed subsample of {len(rows)}: naive mean {np.mean(t_naive):.4f}, medprobe mean "
          f"{np.mean(t_ours):.4f} over {len(deltas)} settings; largest |difference| of one setting "
          f"{np.max(np.abs(deltas)):.4f}")
    print(f"speedup={naive_seconds / ours:.2f} trustworthiness_delta={np.mean(deltas):+.4f}")


if __name__ == "__main__":
    main()
