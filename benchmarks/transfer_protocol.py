"""Time the DLILP study's protocol (medprobe.transfer) at the study's largest scale: RSNA's partitions (8,400
training rows, 3,600 fixed test rows, 2 classes) and NIH-LT's class count (19 classes), 2,048-d features, K in
{1, 2, 4, 8, 16} x 5 folds. Features are random (the cost of the solver does not depend on what they mean; the
protocol's agreement with the authors' code on real features is tests/test_transfer.py).

    python benchmarks/transfer_protocol.py
"""
import time

import numpy as np

from medprobe.transfer import transfer_probe


def case(n_train: int, n_test: int, n_classes: int, dim: int = 2048) -> None:
    rng = np.random.default_rng(0)
    labels = np.concatenate([rng.integers(0, n_classes, n_train), rng.integers(0, n_classes, n_test)])
    centres = rng.normal(size=(n_classes, dim)).astype(np.float32)
    features = centres[labels] * 0.04 + rng.normal(size=(len(labels), dim)).astype(np.float32)
    ids = [f"train/{i:06d}/x" for i in range(n_train)] + [f"test/{i:06d}/x" for i in range(n_test)]
    start = time.perf_counter()
    table = transfer_probe(features, labels, ids, shots=[1, 2, 4, 8, 16], folds=5)
    seconds = time.perf_counter() - start
    aca = table[(table.metric == "aca") & (table.shots == "16")]["value"]
    print(f"{n_train:>6} train + {n_test:>5} test, {n_classes:>2} classes, {dim}-d: 25 fits in {seconds:6.1f} s "
          f"({seconds / 25:.2f} s per fit); 16-shot ACA {aca.mean():.3f} ± {aca.std(ddof=0):.3f}")


if __name__ == "__main__":
    case(8400, 3600, 2)
    case(920, 920, 19)
