"""The paper's probe with both solvers: scikit-learn's LinearSVC (the reference) and medprobe's torch solver of the
same objective, fold by fold on the same split.

    python benchmarks/probe.py --n 28160 --dim 1024 --classes 29      # synthetic, HiCervix-sized
    python benchmarks/probe.py --h5 results/embeddings/brainmr/resnet50.h5 --split results/splits/brainmr.tsv

Prints each solver's time per fold and hold-out accuracy, the share of identical hold-out predictions, and last a
line `speedup=<sklearn time / torch time> agreement=<fraction> accuracy_delta_pp=<torch - sklearn>`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from medprobe.probe import _fold_sklearn, _fold_torch, svc_C  # noqa: E402
from medprobe.split import make_split  # noqa: E402
from medprobe.svm import resolve_device  # noqa: E402


def synthetic(n: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping clusters on a 16-d manifold in `dim` dimensions: a probe neither trivial nor hopeless."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    latent = rng.normal(size=(classes, 16))
    points = latent[labels] + rng.normal(size=(n, 16))
    lift = rng.normal(size=(16, dim)) / 4.0
    return (points @ lift + 0.5 * rng.normal(size=(n, dim))).astype(np.float32), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=28160)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=29)
    parser.add_argument("--h5", type=Path)
    parser.add_argument("--split", type=Path)
    parser.add_argument("--folds", type=int, default=5, help="how many of the CV folds to run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.h5:
        from medprobe.probe import align
        from medprobe.split import read_split
        from medprobe.store import read_embeddings

        if not args.split:
            sys.exit("--h5 needs --split (results/splits/<dataset>.tsv)")
        emb = read_embeddings(args.h5)
        aligned = align(emb, read_split(args.split), source=str(args.h5))
        features = emb.features[aligned["row"].to_numpy()]
        labels, partition = aligned["label"].to_numpy(), aligned["partition"].to_numpy()
        fold, n_classes, source = aligned["fold"].to_numpy(), len(emb.class_names), f"{args.h5}"
    else:
        features, labels = synthetic(args.n, args.dim, args.classes)
        split = make_split([str(i) for i in range(len(labels))], labels, seed=0)
        partition, fold, n_classes = split.partition.to_numpy(), split.fold.to_numpy(), args.classes
        source = f"synthetic {args.n} x {args.dim}, {args.classes} classes"
    device = resolve_device(args.device)
    holdout = partition == "holdout"
    print(f"# {source}; hold-out {holdout.sum()}; torch device {device}; {args.threads} thread(s)")
    print("fold\tn_train\tsklearn_s\ttorch_s\tsklearn_acc\ttorch_acc\tidentical_predictions")
    times = {"sklearn": 0.0, "torch": 0.0}
    agreements, accuracy = [], {"sklearn": [], "torch": []}
    for k in range(args.folds):
        train = (~holdout) & (fold != k)
        C = svc_C(100, int(train.sum()))
        common = dict(n_classes=n_classes, C=C, max_iter=10000, tol=1e-4, standardize=True)
        predictions = {}
        for solver in ("sklearn", "torch"):
            start = time.perf_counter()
            if solver == "sklearn":
                out, _, _, _ = _fold_sklearn(features[train].astype(np.float64), labels[train],
                                             [features[holdout].astype(np.float64)], dual="auto", seed=0, **common)
            else:
                out, _, _, _ = _fold_torch(features[train], labels[train], [features[holdout]], device=device,
                                           **common)
                if device.type == "cuda":
                    torch.cuda.synchronize()
            took = time.perf_counter() - start
            times[solver] += took
            predictions[solver] = np.asarray(out[0][0])
            accuracy[solver].append(float((predictions[solver] == labels[holdout]).mean()))
        agreements.append(float((predictions["sklearn"] == predictions["torch"]).mean()))
        print(f"{k}\t{train.sum()}\t{_last(times, 'sklearn', k)}\t{_last(times, 'torch', k)}\t"
              f"{accuracy['sklearn'][-1]:.4f}\t{accuracy['torch'][-1]:.4f}\t{agreements[-1]:.4f}", flush=True)
    delta = 100.0 * (np.mean(accuracy["torch"]) - np.mean(accuracy["sklearn"]))
    print(f"sklearn {times['sklearn']:.1f} s, torch {times['torch']:.1f} s over {args.folds} fold(s); hold-out "
          f"accuracy sklearn {np.mean(accuracy['sklearn']):.4f}, torch {np.mean(accuracy['torch']):.4f}")
    print(f"speedup={times['sklearn'] / times['torch']:.2f} agreement={np.mean(agreements):.4f} "
          f"accuracy_delta_pp={delta:+.3f}")


_PREVIOUS: dict[str, float] = {}


def _last(times: dict[str, float], solver: str, fold: int) -> str:
    """This fold's seconds (the running totals minus what they were after the previous fold)."""
    took = times[solver] - _PREVIOUS.get(solver, 0.0)
    _PREVIOUS[solver] = times[solver]
    return f"{took:.2f}"


if __name__ == "__main__":
    main()
