"""The nuisance audit: how much a frozen encoder's neighbourhoods follow what is not the diagnosis.

The paper saw UNI cluster by slide, BreastUS by burned-in words, and planes outweigh malignancy. For every nuisance
attribute a dataset has (from the manifest: the group - patient, slide or lesion -, image size, aspect ratio, mode,
file format, and the sub-folder below the class folder; from OCR, medprobe.ocr: the burned-in words and whether an
image has any), measured on the clean embeddings of every image:

- knn_same: the share of each image's k nearest neighbours (cosine, leave-one-out) with the same attribute value,
  against its chance level (the share two random other images have); `knn_lift` = (share - chance) / (1 - chance);
- the same for the class (`class_knn_*`), so the two compare on one scale;
- decodability: cross-validated balanced accuracy of the paper's linear probe predicting the attribute,
  chance-corrected: (bacc - 1/V) / (1 - 1/V);
- silhouette of the attribute's values (cosine);
- dominance = knn_lift / class_knn_lift: above 1, neighbourhoods follow the nuisance more than the class.

An attribute with a single value, or a distinct value for (nearly) every image, says nothing and is left out.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def _bins(values: np.ndarray, n_bins: int = 4) -> np.ndarray:
    """Quantile bins of a numeric attribute, labelled by their range."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        return np.asarray([str(v) for v in values], dtype=object)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return np.asarray([f"{edges[i]:g}-{edges[i + 1]:g}" for i in index], dtype=object)


def nuisance_attributes(manifest: pd.DataFrame, max_unique_share: float = 0.5) -> dict[str, np.ndarray]:
    """Every informative nuisance attribute of the manifest's samples (in manifest order)."""
    short = np.minimum(manifest["width"].to_numpy(), manifest["height"].to_numpy())
    aspect = manifest["width"].to_numpy() / np.maximum(1, manifest["height"].to_numpy())
    parts = manifest["sample_id"].str.split("/")
    folder = np.asarray(["/".join(p[1:-1]) if len(p) > 2 else "" for p in parts], dtype=object)
    candidates = {
        "group": manifest["group"].to_numpy(dtype=object),
        "size": _bins(short.astype(float)),
        "aspect_ratio": np.asarray([f"{a:.1f}" for a in aspect], dtype=object),
        "mode": manifest["mode"].to_numpy(dtype=object),
        "format": np.asarray([Path(p.split("::")[0]).suffix.lower() for p in manifest["path"]], dtype=object),
        "folder": folder,
    }
    kept = {}
    for name, values in candidates.items():
        distinct = len(set(values))
        if distinct < 2 or distinct > max_unique_share * len(values) or (values == "").all():
            continue
        kept[name] = values
    return kept


def knn_indices(features: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """The k nearest neighbours of every row by cosine similarity, itself excluded."""
    import torch

    x = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32))
    x = torch.nn.functional.normalize(x, dim=1)
    k = min(k, len(x) - 1)
    out = np.empty((len(x), k), dtype=np.int64)
    for start in range(0, len(x), block):
        sims = x[start:start + block] @ x.T
        sims[torch.arange(sims.shape[0]), torch.arange(start, start + sims.shape[0])] = -float("inf")
        out[start:start + block] = torch.topk(sims, k, dim=1).indices.numpy()
    return out


def neighbour_share(neighbours: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """(mean share of neighbours with the same value, the share expected of random other images)."""
    values = np.asarray(values, dtype=object)
    same = (values[neighbours] == values[:, None]).mean()
    _, counts = np.unique(values.astype(str), return_counts=True)
    n = len(values)
    chance = float((counts * (counts - 1)).sum() / (n * (n - 1)))
    return float(same), chance


def lift(share: float, chance: float) -> float:
    return (share - chance) / (1.0 - chance) if chance < 1.0 else 0.0


def decodability(features: np.ndarray, values: np.ndarray, n_folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """Chance-corrected balanced accuracy of the paper's probe predicting the attribute (mean, std over folds)."""
    from sklearn.metrics import balanced_accuracy_score

    from medprobe.probe import _fold_sklearn, svc_C
    from medprobe.split import cv_folds

    codes, y = np.unique(np.asarray(values).astype(str), return_inverse=True)
    scores = []
    for train, test in cv_folds(y, n_folds, seed):
        if len(np.unique(y[train])) < 2:
            continue
        outputs, _, _, _ = _fold_sklearn(features[train], y[train], [features[test]], n_classes=len(codes),
                                         C=svc_C(100.0, len(train)), max_iter=10000, tol=1e-4, standardize=True,
                                         dual="auto", seed=seed)
        with warnings.catch_warnings():  # folds without every value (rare values, plain K-fold)
            warnings.simplefilter("ignore")
            bacc = balanced_accuracy_score(y[test], outputs[0][0])
        scores.append((bacc - 1.0 / len(codes)) / (1.0 - 1.0 / len(codes)))
    return (float(np.mean(scores)), float(np.std(scores))) if scores else (float("nan"), float("nan"))


def silhouette(features: np.ndarray, values: np.ndarray, max_points: int = 3000, seed: int = 0) -> float:
    from sklearn.metrics import silhouette_score

    values = np.asarray(values).astype(str)
    index = np.arange(len(values))
    if len(index) > max_points:
        index = np.sort(np.random.default_rng(seed).choice(len(index), max_points, replace=False))
    if len(np.unique(values[index])) < 2:
        return float("nan")
    return float(silhouette_score(features[index], values[index], metric="cosine"))


def nuisance_audit(features: np.ndarray, labels: np.ndarray, attributes: Mapping[str, np.ndarray], *, k: int = 10,
                   n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    neighbours = knn_indices(features, k)
    class_share, class_chance = neighbour_share(neighbours, labels)
    class_lift = lift(class_share, class_chance)
    rows = []
    for name, values in attributes.items():
        share, chance = neighbour_share(neighbours, values)
        nuisance_lift = lift(share, chance)
        decod, decod_sd = decodability(features, values, n_folds, seed)
        n_values = len(set(values))
        for metric, value, spread in (
                ("knn_same", share, 0.0), ("knn_chance", chance, 0.0), ("knn_lift", nuisance_lift, 0.0),
                ("class_knn_same", class_share, 0.0), ("class_knn_chance", class_chance, 0.0),
                ("class_knn_lift", class_lift, 0.0), ("decodability", decod, decod_sd),
                ("silhouette", silhouette(features, values, seed=seed), 0.0),
                ("dominance", nuisance_lift / class_lift if class_lift > 0 else float("nan"), 0.0),
                ("n_values", float(n_values), 0.0)):
            rows.append(dict(probe="nuisance", attribute=name, metric=metric, value=value, spread=spread,
                             n=len(labels)))
    return pd.DataFrame(rows)


def read_ocr(path: str | Path) -> pd.DataFrame:
    """The OCR tokens of a dataset (medprobe.ocr writes them)."""
    return pd.read_csv(path, sep="\t", dtype={"sample_id": str, "token": str}, keep_default_na=False)


def text_attributes(ocr: pd.DataFrame, sample_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Per image: its words (letters only, 3+ characters, sorted, deduplicated) and whether it has any."""
    words = (ocr[ocr["token"].str.fullmatch(r"[A-Z]{3,}")].groupby("sample_id")["token"]
             .apply(lambda t: " ".join(sorted(set(t)))))
    text = np.asarray([words.get(s, "(none)") for s in sample_ids], dtype=object)
    return {"burned_in_text": text, "has_text": np.where(text == "(none)", "no text", "text").astype(object)}


def run_nuisance(embeddings_path: str | Path, manifest_path: str | Path, *, k: int = 10, n_folds: int = 5,
                 seed: int = 0, ocr_path: str | Path | None = None) -> pd.DataFrame:
    """The nuisance rows of one (dataset, model), from the clean embeddings and the manifest's facts."""
    from medprobe.errors import StoreError
    from medprobe.manifest import read_manifest
    from medprobe.store import read_embeddings

    emb = read_embeddings(embeddings_path)
    manifest = read_manifest(manifest_path)
    if list(manifest["sample_id"]) != list(emb.sample_id):
        raise StoreError(f"{embeddings_path}: its samples differ from {manifest_path}; rerun the embed rule")
    valid = emb.valid_rows()
    attributes = nuisance_attributes(manifest[valid].reset_index(drop=True))
    if ocr_path:
        for name, values in text_attributes(read_ocr(ocr_path), list(emb.sample_id[valid])).items():
            if 2 <= len(set(values)) <= 0.5 * len(values):
                attributes[name] = values
    log.info("nuisance attributes: %s", {name: len(set(v)) for name, v in attributes.items()})
    return nuisance_audit(emb.features[valid], emb.labels[valid], attributes, k=k, n_folds=n_folds, seed=seed)
