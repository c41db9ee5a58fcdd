"""Zero-shot classification for models with a text tower: each class is described in words (DLILP compares bare
class names in prompt templates with longer descriptions); an image goes to the class whose mean prompt embedding
is most similar (cosine) to its own. Scored on the hold-out of the dataset's split, like every other probe.

Prompts come from the dataset's registry entry: `prompt_names` (class -> readable name; default: the class name
with underscores as spaces) in TEMPLATES, and `descriptions` (class -> one or more sentences) when given.
results/zeroshot/{dataset}/{model}.tsv: one row per (prompt_set, metric).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from medprobe import files
from medprobe.errors import EncoderError
from medprobe.probe import align, classification_metrics
from medprobe.split import read_split
from medprobe.store import read_embeddings

log = logging.getLogger(__name__)

TEMPLATES = ("a photo of {}.", "a medical image of {}.", "an image showing {}.")
ZEROSHOT_COLUMNS = ["dataset", "model", "prompt_set", "metric", "value", "n_eval", "n_prompts"]


def class_prompts(class_names: Sequence[str], dataset_spec: Mapping) -> dict[str, list[list[str]]]:
    """prompt set -> one list of prompts per class (in label order)."""
    names = dataset_spec.get("prompt_names") or {}
    readable = [names.get(c, c.replace("_", " ")) for c in class_names]
    sets = {"names": [[t.format(name) for t in TEMPLATES] for name in readable]}
    descriptions = dataset_spec.get("descriptions") or {}
    if descriptions:
        missing = [c for c in class_names if c not in descriptions]
        if missing:
            raise EncoderError(f"dataset '{dataset_spec.get('name')}': descriptions lack class(es) "
                               f"{', '.join(missing)}")
        sets["descriptions"] = [[d] if isinstance(d, str) else list(d) for d in (descriptions[c]
                                                                                   for c in class_names)]
    return sets


def class_embeddings(encode, prompts: list[list[str]]) -> np.ndarray:
    """One unit vector per class: the normalised mean of its normalised prompt embeddings."""
    out = []
    for texts in prompts:
        emb = np.asarray(encode(texts), dtype=np.float64)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        mean = emb.mean(axis=0)
        out.append(mean / np.linalg.norm(mean))
    return np.stack(out)


def zero_shot_scores(image_features: np.ndarray, text: np.ndarray) -> np.ndarray:
    image = np.asarray(image_features, dtype=np.float64)
    image = image / np.linalg.norm(image, axis=1, keepdims=True).clip(min=1e-12)
    return image @ text.T


def run_zeroshot(embeddings_path: str | Path, split_path: str | Path, weights_json: str | Path | None,
                 out_path: str | Path, *, dataset_id: str, model_id: str, model_spec: Mapping,
                 dataset_spec: Mapping) -> pd.DataFrame:
    """The `zeroshot` rule."""
    from medprobe.models import build_text_encoder
    from medprobe.weights import read_record, record_paths

    record = read_record(weights_json, model_id) if weights_json and model_spec["weights"]["source"] not in (
        "none", "random") else None
    encode = build_text_encoder(model_id, model_spec, record_paths(record) if record else None)
    emb = read_embeddings(embeddings_path)
    aligned = align(emb, read_split(split_path), source=str(embeddings_path))
    holdout = aligned[aligned["partition"] == "holdout"]
    labels = holdout["label"].to_numpy()
    image = emb.features[holdout["row"].to_numpy()]
    projection = getattr(encode, "image_projection", None)
    if projection is not None:  # the stored feature is before the image side's projection into the shared space
        image = image @ projection
    rows = []
    for prompt_set, prompts in class_prompts(emb.class_names, dataset_spec).items():
        text = class_embeddings(encode, prompts)
        if text.shape[1] != image.shape[1]:
            raise EncoderError(f"model '{model_id}': {embeddings_path} holds feature point "
                               f"{emb.attrs.get('feature_point')!r} ({image.shape[1]}-d), which is not the text "
                               f"tower's {text.shape[1]}-d space; zero-shot needs the model's default feature point "
                               f"({model_spec['feature_point']!r}): drop feature_points.{model_id} from the config")
        scores = zero_shot_scores(image, text)
        metrics = classification_metrics(labels, scores.argmax(axis=1), scores, len(emb.class_names))
        for metric, value in metrics.items():
            rows.append(dict(dataset=dataset_id, model=model_id, prompt_set=prompt_set, metric=metric, value=value,
                             n_eval=len(labels), n_prompts=sum(len(p) for p in prompts)))
        log.info("zero-shot (%s prompts): hold-out accuracy %.4f", prompt_set, metrics["accuracy"])
    table = pd.DataFrame(rows, columns=ZEROSHOT_COLUMNS)
    files.write_tsv(out_path, table)
    return table


def attack_flips(clean_scores: np.ndarray, written_scores: np.ndarray, labels: np.ndarray) -> tuple[float, int, float]:
    """clean_scores (images, K); written_scores (images, K words, K classes), word k naming class k. Of the images
    zero-shot classifies correctly, the share of (image, other class's name written) pairs whose prediction becomes
    the written class. Returns (flip share, pairs, clean accuracy)."""
    correct = clean_scores.argmax(axis=1) == labels
    k = clean_scores.shape[1]
    flips = []
    for i in np.flatnonzero(correct):
        for word in range(k):
            if word != labels[i]:
                flips.append(written_scores[i, word].argmax() == word)
    return (float(np.mean(flips)) if flips else float("nan"), len(flips), float(correct.mean()))


def run_typographic_attack(embeddings_path: str | Path, overlays_path: str | Path, weights_json: str | Path | None,
                           out_path: str | Path, *, dataset_id: str, model_id: str, model_spec: Mapping,
                           dataset_spec: Mapping) -> pd.DataFrame:
    """The `typographic_attack` rule (models with a text tower): do class names written on the images steer the
    zero-shot prediction? Uses the typographic probe's overlaid embeddings of the class-name word set."""
    from medprobe.models import build_text_encoder
    from medprobe.typographic import BIAS_COLUMNS, align_overlays
    from medprobe.overlay import CLASS_NAMES_SET
    from medprobe.weights import read_record, record_paths

    record = read_record(weights_json, model_id) if weights_json and model_spec["weights"]["source"] not in (
        "none", "random") else None
    encode = build_text_encoder(model_id, model_spec, record_paths(record) if record else None)
    clean = read_embeddings(embeddings_path)
    inputs = align_overlays(clean, read_embeddings(overlays_path))
    if CLASS_NAMES_SET not in inputs.words:
        raise EncoderError(f"{overlays_path}: no class-name word set; set bias.class_name_words: true")
    projection = getattr(encode, "image_projection", None)

    def scores(features: np.ndarray) -> np.ndarray:
        features = features @ projection if projection is not None else features
        return zero_shot_scores(features, text)

    text = class_embeddings(encode, class_prompts(clean.class_names, dataset_spec)["names"])
    written = inputs.words[CLASS_NAMES_SET]
    clean_scores = scores(inputs.clean)
    written_scores = np.stack([scores(written[:, w]) for w in range(written.shape[1])], axis=1)
    flip, pairs, clean_acc = attack_flips(clean_scores, written_scores, inputs.labels)
    attacked = float(np.mean([(written_scores[i, (y + 1) % written.shape[1]].argmax() == y)
                              for i, y in enumerate(inputs.labels)]))
    spread = float(np.sqrt(flip * (1 - flip) / pairs)) if pairs else float("nan")
    n = len(inputs.labels)
    table = pd.DataFrame([
        dict(dataset=dataset_id, model=model_id, probe="typographic_attack", attribute=CLASS_NAMES_SET,
             metric="attack_flip_rate", value=flip, spread=spread, n=n),
        dict(dataset=dataset_id, model=model_id, probe="typographic_attack", attribute=CLASS_NAMES_SET,
             metric="zeroshot_clean_accuracy", value=clean_acc, spread=0.0, n=n),
        dict(dataset=dataset_id, model=model_id, probe="typographic_attack", attribute=CLASS_NAMES_SET,
             metric="zeroshot_attacked_accuracy", value=attacked, spread=0.0, n=n)], columns=BIAS_COLUMNS)
    files.write_tsv(out_path, table)
    log.info("typographic attack: %.1f %% of %d (correct image, other class's name) pairs flip to the written class; "
             "zero-shot accuracy %.3f clean, %.3f with the next class's name written", 100 * flip, pairs, clean_acc,
             attacked)
    return table
