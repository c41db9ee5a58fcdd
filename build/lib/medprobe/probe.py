"""The paper's linear probe, in one place.

For each of the K CV folds of the dataset's split: fit a StandardScaler on the fold's training rows only, train
LinearSVC (L2-regularised squared hinge, one-vs-rest) with C = C_numerator / n_train, then score the fold model on
its CV validation rows and on the shared hold-out. solver: sklearn (scikit-learn's LinearSVC, the reference) or
torch (medprobe.svm: the same objective for all classes at once, on the GPU when there is one). The paper table reports mean ± std over the K fold models on the
hold-out; the CV validation scores are kept beside them.

results/probe/{dataset}/{model}.tsv: one row per (fold, eval, metric), eval in {holdout, cv_val};
results/probe/{dataset}/{model}.predictions.tsv: every fold model's hold-out predictions (for paired tests).
Metrics: accuracy, f1_macro, f1_binary (F1 of label 1; two-class datasets only), balanced_accuracy, auroc_macro
(one-vs-rest AUROC of the decision scores, averaged over the classes present).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from medprobe import files
from medprobe.errors import StoreError
from medprobe.split import read_split
from medprobe.store import Embeddings, read_embeddings

log = logging.getLogger(__name__)

PROBE_COLUMNS = ["dataset", "model", "fold", "eval", "metric", "value", "n_train", "n_eval", "n_classes", "C",
                 "n_iter", "converged"]


def svc_C(C_numerator: float, n_train: int) -> float:
    """The paper's regularisation: C = 100 / N, N = the number of samples the fold model is trained on."""
    return float(C_numerator) / int(n_train)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray,
                           n_classes: int) -> dict[str, float]:
    labels = np.arange(n_classes)
    metrics = {
        "accuracy": accuracy_score(y_true, y_pred),
        "f1_macro": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
    }
    if n_classes == 2:
        metrics["f1_binary"] = f1_score(y_true, y_pred, pos_label=1, average="binary", zero_division=0)
        if len(np.unique(y_true)) == 2:
            metrics["auroc_macro"] = roc_auc_score(y_true, scores if scores.ndim == 1 else scores[:, 1] - scores[:, 0])
    else:
        per_class = [roc_auc_score(y_true == c, scores[:, c]) for c in labels
                     if 0 < (y_true == c).sum() < len(y_true)]
        if per_class:
            metrics["auroc_macro"] = float(np.mean(per_class))
    return {k: float(v) for k, v in metrics.items()}


def full_scores(model: LinearSVC, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Decision scores with one column per class of the dataset, also when a fold's training rows miss a class
    (its column then scores below every other)."""
    raw = model.decision_function(x)
    if raw.ndim == 1:
        raw = np.stack([-raw, raw], axis=1)
    scores = np.full((len(x), n_classes), raw.min() - 1.0 if raw.size else -1.0)
    scores[:, model.classes_] = raw
    return scores


def align(emb: Embeddings, split: pd.DataFrame, source: str = "") -> pd.DataFrame:
    """The split's rows with the embedding row index of each sample (failed images dropped, with a log line)."""
    rows = pd.DataFrame({"sample_id": emb.sample_id, "row": np.arange(len(emb.sample_id))})
    merged = split.merge(rows, on="sample_id", how="outer", indicator=True)
    if (merged["_merge"] != "both").any():
        only_split = int((merged["_merge"] == "left_only").sum())
        only_emb = int((merged["_merge"] == "right_only").sum())
        raise StoreError(f"{source}: embeddings and split disagree ({only_split} sample(s) only in the split, "
                         f"{only_emb} only in the embeddings); they come from different manifests. Rerun the "
                         f"embed rule for this dataset.")
    merged = merged.drop(columns="_merge").sort_values("row").reset_index(drop=True)
    valid = emb.valid_rows()[merged["row"].to_numpy()]
    if not valid.all():
        log.warning("%s: %d sample(s) with NaN features (failed images) left out of the probe",
                    source, int((~valid).sum()))
    return merged[valid].reset_index(drop=True)


@dataclass
class ProbeResult:
    metrics: pd.DataFrame        # one row per (fold, eval, metric)
    predictions: pd.DataFrame    # hold-out rows: row (index into the inputs), fold, prediction


def _fold_sklearn(x_train, y_train, evals, *, n_classes, C, max_iter, tol, standardize, dual, seed):
    scaler = StandardScaler(with_mean=standardize, with_std=standardize).fit(x_train)
    model = LinearSVC(C=C, max_iter=max_iter, tol=tol, dual=dual, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(scaler.transform(x_train), y_train)
    n_iter = int(np.max(model.n_iter_))
    outputs = []
    for x_eval in evals:
        x_eval = scaler.transform(x_eval)
        outputs.append((model.predict(x_eval), full_scores(model, x_eval, n_classes)))
    converged = n_iter < max_iter
    return outputs, n_iter, converged, "" if converged else f"liblinear stopped at max_iter={max_iter}"


def _fold_torch(x_train, y_train, evals, *, n_classes, C, max_iter, tol, standardize, device, fold=0):
    import torch

    from medprobe.svm import as_tensor, fit_linear_svc
    from medprobe.svm import standardize as scale

    tensors = scale(as_tensor(x_train, device), *(as_tensor(x, device) for x in evals), enabled=standardize)
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise StoreError(f"fold {fold}: the standardized features are not finite (values too large for float32); "
                         f"the embedding file holds values no encoder produces. Delete it and rerun the embed rule.")
    labels = torch.as_tensor(y_train, device=device, dtype=torch.long)
    present = torch.unique(labels)

    def progress(iteration, ratio, seconds):
        log.info("fold %d: Newton iteration %d of at most %d, |grad| / |grad0| = %.2e (tol %g), %.0f s", fold,
                 iteration, max_iter, ratio, tol, seconds)

    model = fit_linear_svc(tensors[0], labels, n_classes, C, tol=tol, max_iter=max_iter, progress=progress)
    outputs = []
    for x_eval in tensors[1:]:
        scores = model.decision_function(x_eval)
        if n_classes > 2 and len(present) < n_classes:  # a class absent from this fold's training rows
            absent = torch.ones(n_classes, dtype=torch.bool, device=device)
            absent[present] = False
            scores = scores.clone()
            scores[:, absent] = scores.min() - 1.0
        prediction = (scores > 0).long() if n_classes == 2 else scores.argmax(dim=1)
        full = scores.cpu().numpy().astype(np.float64)
        if n_classes == 2:
            full = np.stack([-full, full], axis=1)
        outputs.append((prediction.cpu().numpy(), full))
    why = "" if model.converged else (
        f"{'the line search found no decrease' if model.stopped == 'stalled' else f'stopped at max_iter={max_iter}'}"
        f" after {model.n_iter} Newton iterations with |grad| / |grad0| = {model.grad_ratio:.2e} (tol {tol})")
    return outputs, model.n_iter, model.converged, why


def probe_linear_svc(features: np.ndarray, labels: np.ndarray, partition: np.ndarray, fold: np.ndarray, *,
                     n_classes: int, C_numerator: float = 100.0, max_iter: int = 10000, tol: float = 1e-4,
                     standardize: bool = True, dual="auto", seed: int = 0, solver: str = "sklearn",
                     device: str = "auto", torch_max_iter: int = 300) -> ProbeResult:
    """The paper's protocol on aligned arrays. solver: sklearn (LinearSVC, the reference) or torch (the same
    objective, medprobe.svm)."""
    features = np.asarray(features, dtype=np.float64 if solver == "sklearn" else np.float32)
    labels = np.asarray(labels)
    holdout = np.asarray(partition) == "holdout"
    torch_device = None
    if solver == "torch":
        from medprobe.svm import resolve_device

        torch_device = resolve_device(device)
    elif solver != "sklearn":
        raise ValueError(f"probe.solver {solver!r}: choose sklearn or torch")
    rows, predictions = [], []
    for k in sorted(int(f) for f in np.unique(fold[fold >= 0])):
        train = (~holdout) & (fold != k)
        val = (~holdout) & (fold == k)
        C = svc_C(C_numerator, int(train.sum()))
        start = time.perf_counter()
        common = dict(n_classes=n_classes, C=C, tol=tol, standardize=standardize)
        if solver == "sklearn":
            outputs, n_iter, converged, why = _fold_sklearn(features[train], labels[train],
                                                            [features[holdout], features[val]], dual=dual,
                                                            seed=seed, max_iter=max_iter, **common)
        else:
            outputs, n_iter, converged, why = _fold_torch(features[train], labels[train],
                                                          [features[holdout], features[val]], device=torch_device,
                                                          max_iter=torch_max_iter, fold=k, **common)
        if not converged:
            log.warning("fold %d: the %s solver did not converge: %s. Its scores are kept, with converged=False in "
                        "the probe table and a note under the paper table; clean features converge (well-scaled "
                        "embeddings take tens of iterations), so check the embeddings, or try probe.solver: sklearn",
                        k, solver, why)
        log.info("fold %d: n_train=%d C=%.6g fitted in %.2f s (%s, %d iterations)", k, train.sum(), C,
                 time.perf_counter() - start, solver, n_iter)
        for name, mask, (predicted, scores) in (("holdout", holdout, outputs[0]), ("cv_val", val, outputs[1])):
            metrics = classification_metrics(labels[mask], predicted, scores, n_classes)
            for metric, value in metrics.items():
                rows.append(dict(fold=k, eval=name, metric=metric, value=value, n_train=int(train.sum()),
                                 n_eval=int(mask.sum()), n_classes=n_classes, C=C, n_iter=n_iter,
                                 converged=converged))
        predictions.append(pd.DataFrame({"row": np.flatnonzero(holdout), "fold": k,
                                         "prediction": np.asarray(outputs[0][0], dtype=np.int64)}))
    return ProbeResult(metrics=pd.DataFrame(rows), predictions=pd.concat(predictions, ignore_index=True))


def run_probe(embeddings_path: str | Path, split_path: str | Path, out_path: str | Path,
              out_predictions: str | Path | None = None, *, dataset_id: str, model_id: str, params: Mapping,
              seed: int = 0) -> pd.DataFrame:
    """The `probe` rule."""
    emb = read_embeddings(embeddings_path)
    split = read_split(split_path)
    aligned = align(emb, split, source=str(embeddings_path))
    result = probe_linear_svc(emb.features[aligned["row"].to_numpy()], aligned["label"].to_numpy(),
                              aligned["partition"].to_numpy(), aligned["fold"].to_numpy(),
                              n_classes=len(emb.class_names), C_numerator=params["C_numerator"],
                              max_iter=params["max_iter"], tol=params["tol"], standardize=params["standardize"],
                              dual=params["dual"], seed=seed, solver=params.get("solver", "sklearn"),
                              device=params.get("device", "auto"),
                              torch_max_iter=params.get("torch_max_iter", 300))
    table = result.metrics
    table.insert(0, "model", model_id)
    table.insert(0, "dataset", dataset_id)
    table = table[PROBE_COLUMNS]
    files.write_tsv(out_path, table)
    if out_predictions:
        rows = result.predictions["row"].to_numpy()
        files.write_tsv(out_predictions, pd.DataFrame({
            "sample_id": aligned["sample_id"].to_numpy()[rows], "label": aligned["label"].to_numpy()[rows],
            "fold": result.predictions["fold"], "prediction": result.predictions["prediction"]}))
    summary = table[table["eval"] == "holdout"].groupby("metric")["value"].agg(["mean", "std"])
    for metric, row in summary.iterrows():
        log.info("hold-out %s: %.4f ± %.4f", metric, row["mean"], row["std"])
    return table


def read_probe(path: str | Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t")
    missing = [c for c in PROBE_COLUMNS if c not in frame.columns]
    if missing:
        raise StoreError(f"{path}: not a medprobe probe table (missing {', '.join(missing)}); rerun the probe rule")
    return frame
