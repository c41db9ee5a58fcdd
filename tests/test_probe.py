import numpy as np
import pytest

from medprobe.probe import classification_metrics, probe_linear_svc, svc_C
from medprobe.split import make_split


def blobs(n_per_class=60, n_classes=3, dim=20, separation=8.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, dim)) * separation
    labels = np.repeat(np.arange(n_classes), n_per_class)
    features = centers[labels] + rng.normal(size=(len(labels), dim))
    return features, labels


def run(features, labels, seed=0, **kwargs):
    split = make_split([str(i) for i in range(len(labels))], labels, seed=seed)
    return probe_linear_svc(features, labels, split.partition.to_numpy(), split.fold.to_numpy(),
                            n_classes=int(labels.max()) + 1, **kwargs).metrics, split


def holdout(table, metric):
    return table[(table["eval"] == "holdout") & (table.metric == metric)]


def test_separable_problem_scores_100():
    features, labels = blobs()
    table, _ = run(features, labels)
    acc = holdout(table, "accuracy")
    assert len(acc) == 5 and (acc.value == 1.0).all()
    assert (holdout(table, "auroc_macro").value == 1.0).all()
    assert set(table.metric) == {"accuracy", "f1_macro", "balanced_accuracy", "auroc_macro"}


def test_shuffled_labels_score_near_chance():
    features, labels = blobs(n_per_class=150, n_classes=2, separation=0.0, seed=1)
    labels = np.random.default_rng(5).permutation(labels)
    table, _ = run(features, labels)
    assert abs(holdout(table, "accuracy").value.mean() - 0.5) < 0.1
    assert abs(holdout(table, "auroc_macro").value.mean() - 0.5) < 0.1
    assert "f1_binary" in set(table.metric)


def test_every_fold_model_is_scored_on_the_same_holdout_with_C_100_over_n():
    features, labels = blobs(n_per_class=40)
    table, split = run(features, labels)
    n_holdout = int((split.partition == "holdout").sum())
    h = holdout(table, "accuracy")
    assert (h.n_eval == n_holdout).all()
    n_train_expected = [int(((split.partition == "train") & (split.fold != k)).sum()) for k in range(5)]
    assert h.sort_values("fold").n_train.tolist() == n_train_expected
    assert np.allclose(h.sort_values("fold").C, [100 / n for n in n_train_expected])
    cv = table[(table["eval"] == "cv_val") & (table.metric == "accuracy")].sort_values("fold")
    assert cv.n_eval.tolist() == [int((split.fold == k).sum()) for k in range(5)]
    assert svc_C(100, 400) == 0.25


@pytest.mark.parametrize("solver", ["sklearn", "torch"])
def test_scaler_is_fitted_on_training_rows_only(solver):
    """A huge offset on the hold-out rows only: with a leak-free scaler, predictions shift; the train fit does not."""
    features, labels = blobs(n_per_class=50, n_classes=2)
    split = make_split([str(i) for i in range(len(labels))], labels, seed=0)
    shifted = features.copy()
    shifted[(split.partition == "holdout").to_numpy()] += 1000.0
    base = probe_linear_svc(features, labels, split.partition.to_numpy(), split.fold.to_numpy(), n_classes=2, solver=solver).metrics
    moved = probe_linear_svc(shifted, labels, split.partition.to_numpy(), split.fold.to_numpy(), n_classes=2, solver=solver).metrics
    cv_base = base[base["eval"] == "cv_val"].value.to_numpy()
    cv_moved = moved[moved["eval"] == "cv_val"].value.to_numpy()
    np.testing.assert_allclose(cv_base, cv_moved)  # the hold-out never enters a fit
    assert holdout(moved, "accuracy").value.mean() < holdout(base, "accuracy").value.mean()


def test_binary_f1_is_of_label_1():
    y = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1, 1, 0])
    metrics = classification_metrics(y, pred, pred.astype(float), 2)
    assert metrics["f1_binary"] == pytest.approx(0.5)
    assert metrics["accuracy"] == pytest.approx(4 / 6)


def test_a_class_missing_from_a_fold_still_scores():
    """A rare class (5 samples) that some fold models never see: predictions and AUROC still come out."""
    features, labels = blobs(n_per_class=40, n_classes=3)
    features = np.vstack([features, features[:5] + 30])
    labels = np.concatenate([labels, np.full(5, 3)])
    # make_split refuses such a class; a split written by hand (or by another tool) can still have one
    split = make_split([str(i) for i in range(120)], labels[:120], seed=0)
    partition = np.concatenate([split.partition.to_numpy(), ["holdout", "train", "train", "train", "train"]])
    fold = np.concatenate([split.fold.to_numpy(), [-1, 0, 1, 2, 3]])
    table = probe_linear_svc(features, labels, partition, fold, n_classes=4).metrics
    auroc = holdout(table, "auroc_macro")
    assert len(auroc) == 5 and auroc.value.between(0, 1).all()


@pytest.mark.parametrize("n_classes", [2, 4])
def test_torch_solver_matches_linear_svc(n_classes):
    """The same objective: the fold models agree with scikit-learn's on nearly every hold-out prediction."""
    features, labels = blobs(n_per_class=150, n_classes=n_classes, dim=40, separation=0.35, seed=3)
    split = make_split([str(i) for i in range(len(labels))], labels, seed=0)
    args = (features, labels, split.partition.to_numpy(), split.fold.to_numpy())
    reference = probe_linear_svc(*args, n_classes=n_classes, solver="sklearn")
    fast = probe_linear_svc(*args, n_classes=n_classes, solver="torch")
    agreement = (reference.predictions.prediction.to_numpy() == fast.predictions.prediction.to_numpy()).mean()
    assert agreement >= 0.99
    acc = [holdout(r.metrics, "accuracy").value.mean() for r in (reference, fast)]
    assert abs(acc[0] - acc[1]) <= 0.01 and 0.5 < acc[0] < 1.0  # a problem that is neither trivial nor hopeless
    assert fast.metrics.converged.all()


def test_torch_objective_is_liblinears():
    """At the torch solution, the gradient of LinearSVC's objective (with its regularised intercept) vanishes."""
    import torch

    from medprobe.svm import fit_linear_svc

    features, labels = blobs(n_per_class=80, n_classes=3, dim=10, separation=0.5, seed=4)
    x = torch.tensor(features, dtype=torch.float64)
    model = fit_linear_svc(x, torch.tensor(labels), 3, C=0.05, tol=1e-10, max_iter=200)
    xa = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    y = -torch.ones(len(x), 3, dtype=torch.float64)
    y[torch.arange(len(x)), torch.tensor(labels)] = 1
    margins = xa @ model.weights
    grad = model.weights + 2 * 0.05 * xa.T @ (((y * margins) < 1) * (margins - y))
    assert grad.abs().max() < 1e-6


def test_hold_out_predictions_are_kept_per_fold():
    features, labels = blobs(n_per_class=30, n_classes=3)
    split = make_split([str(i) for i in range(len(labels))], labels, seed=0)
    result = probe_linear_svc(features, labels, split.partition.to_numpy(), split.fold.to_numpy(), n_classes=3)
    holdout_rows = np.flatnonzero(split.partition.to_numpy() == "holdout")
    assert len(result.predictions) == 5 * len(holdout_rows)
    for _, part in result.predictions.groupby("fold"):
        assert sorted(part.row) == sorted(holdout_rows)


def test_torch_solver_is_bounded_reports_progress_and_says_why_it_stopped():
    import torch

    from medprobe.svm import fit_linear_svc

    features, labels = blobs(n_per_class=60, n_classes=3, dim=30, separation=0.2, seed=1)
    x = torch.tensor((features - features.mean(0)) / features.std(0), dtype=torch.float32)
    calls = []
    model = fit_linear_svc(x, torch.tensor(labels), 3, C=1.0, tol=1e-12, max_iter=3,
                           progress=lambda *args: calls.append(args), progress_seconds=0.0)
    assert not model.converged and model.stopped == "max_iter" and model.n_iter == 3
    assert model.grad_ratio > 1e-12 and [c[0] for c in calls] == [1, 2, 3]
    full = fit_linear_svc(x, torch.tensor(labels), 3, C=1.0, tol=1e-4, max_iter=300)
    assert full.converged and full.stopped == "converged" and full.n_iter < 100


def test_unconverged_folds_are_reported_in_the_log_the_table_and_the_notes(caplog):
    from medprobe.tables import convergence_notes

    features, labels = blobs(n_per_class=40, n_classes=3, dim=20, separation=0.2, seed=2)
    table, _ = run(features, labels, solver="torch", tol=1e-12, torch_max_iter=2)
    assert not table.converged.any()
    assert "fold 0: the torch solver did not converge: stopped at max_iter=2 after 2 Newton iterations" in caplog.text
    table.insert(0, "model", "m")
    table.insert(0, "dataset", "d")
    assert convergence_notes(table) == ["Not converged (the solver stopped at its iteration budget or stalled; see "
                                        "the probe logs): d/m (fold 0, 1, 2, 3, 4)."]
    assert convergence_notes(table.assign(converged=True)) == []


def test_features_too_large_for_float32_stop_the_torch_probe():
    from medprobe.errors import StoreError

    features, labels = blobs(n_per_class=40, n_classes=2, dim=8)
    features = features.astype(np.float32)
    features[:3] = 3e38   # finite, but the standard deviation overflows
    with pytest.raises(StoreError, match="not finite.*rerun the embed rule"):
        run(features, labels, solver="torch")
