"""The typographic probe: how much a written word moves a frozen encoder's features, measured as a controlled experiment.

The paper saw BreastUS cluster by the words "BREAST" and "AXILLA" burned into its images, and concluded that
non-medical models are particularly vulnerable to overlaid text. Here the text is the only thing that varies: every
hold-out image (or a seeded subsample of at most `n_images`) is embedded once per word of each word set
(medprobe.overlay), by the same encoder, preprocessing and feature point as its clean embedding.

results/bias/overlays/{dataset}/{model}.h5   the embedding schema; one row per (image, word); /columns/image_id,
                                             /columns/word_set, /columns/word; attrs.overlay = style and word sets
results/bias/{dataset}/{model}.tsv           dataset, model, probe, attribute, metric, value, spread, n

Metrics, per word set (`attribute`):
- text_decodability: cross-validated linear probe accuracy (the paper's standardize + LinearSVC, C = 100 / n_train)
  for which word was written, folds split by image, chance-corrected: (acc - 1/W) / (1 - 1/W); spread = std over
  folds. 1: the word is perfectly readable from the features; 0: not at all.
- text_effect_size: the variance the word adds (mean squared distance of an image's overlaid embeddings from their
  mean) over the variance the class explains (between-class variance of the clean embeddings); spread = bootstrap std
  over images. Above 1: the text moves features more than the diagnosis does.
- shortcut_drop (the class-name word set, one word per class): the paper's probe trained on overlaid images whose
  word names their own class, tested on held-out images carrying the next class's name, against the same probe on
  the clean held-out images; the accuracy drop in points; spread = std over folds (split by image).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from medprobe import files
from medprobe.overlay import CLASS_NAMES_SET, probe_plan, render
from medprobe.split import cv_folds

log = logging.getLogger(__name__)

BIAS_COLUMNS = ["dataset", "model", "probe", "attribute", "metric", "value", "spread", "n"]


# --- the metrics ----------------------------------------------------------------------------------------------------

def _svc_accuracy(x_train, y_train, x_tests, seed: int = 0) -> list[float]:
    """Accuracy on each (x, y) of the paper's probe (medprobe.probe's fold: standardize, LinearSVC, C = 100 / n)."""
    from medprobe.probe import _fold_sklearn, svc_C

    n_classes = int(max(np.max(y_train), *(np.max(y) for _, y in x_tests))) + 1
    outputs, _, _, _ = _fold_sklearn(x_train, y_train, [x for x, _ in x_tests], n_classes=n_classes,
                                     C=svc_C(100.0, len(x_train)), max_iter=10000, tol=1e-4, standardize=True,
                                     dual="auto", seed=seed)
    return [float((predicted == y).mean()) for (predicted, _), (_, y) in zip(outputs, x_tests)]


def text_decodability(words_features: np.ndarray, n_folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """words_features (images, W, D): chance-corrected CV accuracy of reading the word; folds split by image."""
    n, w, d = words_features.shape
    folds = cv_folds(np.zeros(n, dtype=np.int64), n_folds, seed)
    scores = []
    for train, test in folds:
        x_train = words_features[train].reshape(-1, d)
        y_train = np.tile(np.arange(w), len(train))
        x_test = words_features[test].reshape(-1, d)
        y_test = np.tile(np.arange(w), len(test))
        if np.ptp(x_train, axis=0).max() == 0:   # the features do not change at all: nothing to read
            accuracy = 1.0 / w
        else:
            accuracy = _svc_accuracy(x_train, y_train, [(x_test, y_test)], seed=seed)[0]
        scores.append((accuracy - 1.0 / w) / (1.0 - 1.0 / w))
    return float(np.mean(scores)), float(np.std(scores))


def text_effect_size(words_features: np.ndarray, clean: np.ndarray, labels: np.ndarray, *, n_boot: int = 200,
                     seed: int = 0) -> tuple[float, float]:
    """Variance added by the word over variance explained by the class (clean features); bootstrap std over images."""
    def ratio(index: np.ndarray) -> float:
        x = words_features[index]
        word_var = float(((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean())
        c, y = clean[index], labels[index]
        mu = c.mean(axis=0)
        class_var = sum((y == k).sum() * float(((c[y == k].mean(axis=0) - mu) ** 2).sum())
                        for k in np.unique(y)) / len(y)
        return word_var / class_var if class_var > 0 else float("inf")

    everything = np.arange(len(clean))
    rng = np.random.default_rng(seed)
    boot = [ratio(rng.integers(0, len(clean), len(clean))) for _ in range(n_boot)]
    return ratio(everything), float(np.std([b for b in boot if np.isfinite(b)]) if boot else 0.0)


def shortcut_drop(words_features: np.ndarray, clean: np.ndarray, labels: np.ndarray, n_classes: int,
                  n_folds: int = 5, seed: int = 0) -> tuple[float, float, float, float]:
    """words_features (images, K, D) with word k naming class k. Returns (drop in points, its std over folds, clean
    accuracy, permuted accuracy) of a probe trained on images carrying their own class's name."""
    folds = cv_folds(labels, n_folds, seed)
    drops, clean_acc, permuted_acc = [], [], []
    rows = np.arange(len(labels))
    for train, test in folds:
        if len(np.unique(labels[train])) < 2:
            continue
        x_train = words_features[train, labels[train]]
        wrong = (labels[test] + 1) % n_classes
        on_clean, on_permuted = _svc_accuracy(x_train, labels[train],
                                              [(clean[test], labels[test]),
                                               (words_features[rows[test], wrong], labels[test])], seed=seed)
        drops.append(100.0 * (on_clean - on_permuted))
        clean_acc.append(on_clean)
        permuted_acc.append(on_permuted)
    return (float(np.mean(drops)), float(np.std(drops)), float(np.mean(clean_acc)), float(np.mean(permuted_acc)))


@dataclass
class ProbeInputs:
    clean: np.ndarray                         # (images, D), the clean embeddings of the probe's images
    labels: np.ndarray                        # (images,)
    words: dict[str, np.ndarray]              # word set -> (images, W, D)
    word_sets: dict[str, list[str]]


def align_overlays(clean_emb, overlay_emb) -> ProbeInputs:
    """The clean and overlaid embeddings of the probe's images as arrays (image order of the overlay file)."""
    from medprobe.errors import StoreError

    cols = overlay_emb.columns
    word_sets = overlay_emb.attrs["overlay"]["word_sets"]
    image_ids = list(dict.fromkeys(cols["image_id"]))
    position = {s: i for i, s in enumerate(clean_emb.sample_id)}
    missing = [i for i in image_ids if i not in position]
    if missing:
        raise StoreError(f"the overlay embeddings name {len(missing)} image(s) that the clean embeddings lack (first: "
                         f"{missing[0]}); they come from different manifests. Rerun embed_overlay.")
    clean = clean_emb.features[[position[i] for i in image_ids]]
    labels = clean_emb.labels[[position[i] for i in image_ids]]
    index = {(i, s, w): r for r, (i, s, w) in enumerate(zip(cols["image_id"], cols["word_set"], cols["word"]))}
    words = {}
    for name, members in word_sets.items():
        rows = [[index[(i, name, w)] for w in members] for i in image_ids]
        words[name] = overlay_emb.features[np.asarray(rows)]
    ok = np.isfinite(clean).all(axis=1) & np.all([np.isfinite(x).all(axis=(1, 2)) for x in words.values()], axis=0)
    if not ok.all():
        log.warning("%d image(s) with NaN features (failed images) left out of the typographic probe",
                    int((~ok).sum()))
    return ProbeInputs(clean=clean[ok], labels=labels[ok], words={k: v[ok] for k, v in words.items()},
                       word_sets=word_sets)


def typographic_metrics(inputs: ProbeInputs, n_classes: int, *, n_folds: int = 5, seed: int = 0,
                        n_boot: int = 200) -> pd.DataFrame:
    rows = []
    n = len(inputs.labels)
    for name, x in inputs.words.items():
        value, spread = text_decodability(x, n_folds, seed)
        rows.append(dict(probe="typographic", attribute=name, metric="text_decodability", value=value,
                         spread=spread, n=n))
        value, spread = text_effect_size(x, inputs.clean, inputs.labels, n_boot=n_boot, seed=seed)
        rows.append(dict(probe="typographic", attribute=name, metric="text_effect_size", value=value,
                         spread=spread, n=n))
    if CLASS_NAMES_SET in inputs.words and inputs.words[CLASS_NAMES_SET].shape[1] == n_classes:
        drop, spread, clean_acc, permuted_acc = shortcut_drop(inputs.words[CLASS_NAMES_SET], inputs.clean,
                                                              inputs.labels, n_classes, n_folds, seed)
        for metric, value, sd in (("shortcut_drop", drop, spread), ("shortcut_clean_accuracy", clean_acc, 0.0),
                                  ("shortcut_permuted_accuracy", permuted_acc, 0.0)):
            rows.append(dict(probe="typographic", attribute=CLASS_NAMES_SET, metric=metric, value=value, spread=sd,
                             n=n))
    return pd.DataFrame(rows)


def run_typographic(clean_path: str | Path, overlay_path: str | Path, out_path: str | Path, *, dataset_id: str,
                    model_id: str, n_folds: int = 5, seed: int = 0, n_boot: int = 200,
                    manifest_path: str | Path | None = None, knn_k: int = 10,
                    ocr_path: str | Path | None = None) -> pd.DataFrame:
    """The typographic probe's rows (and, given the manifest, the nuisance audit's) of one (dataset, model)."""
    from medprobe.store import read_embeddings

    clean, overlays = read_embeddings(clean_path), read_embeddings(overlay_path)
    inputs = align_overlays(clean, overlays)
    table = typographic_metrics(inputs, len(clean.class_names), n_folds=n_folds, seed=seed, n_boot=n_boot)
    if manifest_path is not None:
        from medprobe.nuisance import run_nuisance

        table = pd.concat([table, run_nuisance(clean_path, manifest_path, k=knn_k, n_folds=n_folds, seed=seed,
                                               ocr_path=ocr_path)], ignore_index=True)
    table.insert(0, "model", model_id)
    table.insert(0, "dataset", dataset_id)
    table = table[BIAS_COLUMNS]
    files.write_tsv(out_path, table)
    for row in table.itertuples():
        log.info("%s %s: %.4f ± %.4f", row.attribute, row.metric, row.value, row.spread)
    return table


def run_bias_audit(clean_path: str | Path, overlay_path: str | Path, manifest_path: str | Path,
                   out_path: str | Path, *, dataset_id: str, model_id: str, n_folds: int = 5, seed: int = 0,
                   n_boot: int = 200, knn_k: int = 10, ocr_path: str | Path | None = None) -> pd.DataFrame:
    """The `bias_audit` rule: the typographic probe and the nuisance audit of one (dataset, model)."""
    return run_typographic(clean_path, overlay_path, out_path, dataset_id=dataset_id, model_id=model_id,
                           n_folds=n_folds, seed=seed, n_boot=n_boot, manifest_path=manifest_path, knn_k=knn_k,
                           ocr_path=ocr_path)


# --- the table and the figure ---------------------------------------------------------------------------------------

TABLE_METRICS = (("text_decodability", "class_names", "text decodability"),
                 ("text_effect_size", "class_names", "text effect size"),
                 ("shortcut_drop", "class_names", "shortcut drop (points)"))


def bias_table(paths: Sequence[str | Path], models: Mapping[str, Mapping], datasets: Mapping[str, Mapping]
               ) -> pd.DataFrame:
    """Tidy: every row of every (dataset, model) file, with the model's group and name (medical vs not visible)."""
    frames = [pd.read_csv(p, sep="\t") for p in paths]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=BIAS_COLUMNS)
    table.insert(2, "group", [models[m]["group"] if m in models else "" for m in table["model"]])
    order = {m: i for i, m in enumerate(models)}
    dorder = {d: i for i, d in enumerate(datasets)}
    return table.sort_values(["dataset", "model", "attribute", "metric"],
                             key=lambda c: c.map(order) if c.name == "model" else (
                                 c.map(dorder) if c.name == "dataset" else c)).reset_index(drop=True)


def _markdown_block(title: str, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping], cell,
                    only: set[str] | None = None) -> list[str]:
    """One table: a row per model (in its group; only those in `only` when given), a column per dataset;
    cell(model_id, dataset_id) gives the text ("–" when there is nothing)."""
    lines = [f"### {title}", "", "| group | model | " + " | ".join(datasets[d]["name"] for d in datasets) + " |",
             "|---|---|" + "|".join([":-:"] * len(datasets)) + "|"]
    for model_id, spec in models.items():
        if only is None or model_id in only:
            cells = [cell(model_id, dataset_id) for dataset_id in datasets]
            lines.append(f"| {spec['group']} | {spec['name']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _mean_spread(part: pd.DataFrame):
    def cell(model_id: str, dataset_id: str) -> str:
        hit = part[(part["model"] == model_id) & (part["dataset"] == dataset_id)]
        return f"{hit['value'].iloc[0]:.2f} ± {hit['spread'].iloc[0]:.2f}" if len(hit) else "–"
    return cell


def bias_markdown(table: pd.DataFrame, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping]) -> str:
    """Models (in their groups) x datasets, one block per headline metric, mean ± spread."""
    lines = ["Typographic probe: words written on the hold-out images (medprobe.typographic)", ""]
    for metric, attribute, title in TABLE_METRICS:
        part = table[(table["metric"] == metric) & (table["attribute"] == attribute)]
        lines += _markdown_block(f"{title} ({attribute} word set)", models, datasets, _mean_spread(part))
    attack = table[table["metric"] == "attack_flip_rate"]
    if len(attack):
        lines += _markdown_block("typographic attack (models with a text tower): share of correct zero-shot "
                                 "predictions that flip to another class's name written on the image", models,
                                 datasets, _mean_spread(attack), only=set(attack["model"]))
    nuisance = table[(table["probe"] == "nuisance") & (table["metric"] == "dominance")].dropna(subset=["value"])
    if len(nuisance):
        def dominant(model_id: str, dataset_id: str) -> str:
            hit = nuisance[(nuisance["model"] == model_id) & (nuisance["dataset"] == dataset_id)]
            if not len(hit):
                return "–"
            top = hit.loc[hit["value"].idxmax()]
            return f"{top['attribute']} {top['value']:.2f}"

        lines += _markdown_block("nuisance dominance (the attribute whose neighbourhoods dominate most)", models,
                                 datasets, dominant)
    lines.append("text decodability: chance-corrected accuracy of reading the word (0 chance, 1 perfect); text "
                 "effect size: variance the word adds over variance between classes (> 1: the text moves the "
                 "features more than the diagnosis); shortcut drop: accuracy lost, in points, when a probe trained on "
                 "images carrying their class's name sees the next class's name; nuisance dominance: the lift over "
                 "chance of same-attribute neighbours (cosine, k nearest) over that of same-class neighbours (> 1: "
                 "neighbourhoods follow the attribute more than the class).")
    return "\n".join(lines) + "\n"


def make_bias_table(paths: Sequence[str | Path], *, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping],
                    out_tsv: str | Path, out_md: str | Path) -> pd.DataFrame:
    """The `bias_table` rule."""
    table = bias_table(paths, models, datasets)
    files.write_tsv(out_tsv, table)
    files.write_text(out_md, bias_markdown(table, models, datasets))
    return table


def bias_figure(table: pd.DataFrame, dataset_id: str, models: Mapping[str, Mapping], out_path: str | Path) -> None:
    """One dataset: models ranked by text decodability, beside their shortcut drop, coloured by model group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = table[(table["dataset"] == dataset_id) & (table["attribute"] == CLASS_NAMES_SET)]
    decod = part[part["metric"] == "text_decodability"].set_index("model")
    drop = part[part["metric"] == "shortcut_drop"].set_index("model")
    order = decod["value"].sort_values().index.tolist()
    groups = list(dict.fromkeys(models[m]["group"] for m in models))
    palette = dict(zip(groups, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * max(3, len(order)) + 1.2), sharey=True)
    names = [models[m]["name"] if m in models else m for m in order]
    colours = [palette.get(models.get(m, {}).get("group"), "grey") for m in order]
    for ax, frame, title in ((axes[0], decod, "text decodability (0 chance, 1 perfect)"),
                             (axes[1], drop, "shortcut drop (accuracy points)")):
        values = [frame["value"].get(m, np.nan) for m in order]
        spreads = [frame["spread"].get(m, 0.0) for m in order]
        ax.barh(names, values, xerr=spreads, color=colours)
        ax.set_title(title, fontsize=10)
        ax.axvline(0, color="black", linewidth=0.8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[g]) for g in groups]
    fig.legend(handles, groups, loc="lower center", ncol=min(4, len(groups)), fontsize=8, frameon=False)
    fig.suptitle(f"{dataset_id}: the dataset's class names written on its hold-out images", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    with files.atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def example_panel(manifest_path: str | Path, split_path: str | Path, bias: Mapping[str, Any],
                  class_names: Sequence[str], out_path: str | Path, *, seed: int = 0, n_examples: int = 3) -> None:
    """A few hold-out images with every word written on them, as the probe saw them (before preprocessing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medprobe.imageio import load_rgb
    from medprobe.manifest import read_manifest
    from medprobe.split import read_split

    images, plan = probe_plan(read_manifest(manifest_path), read_split(split_path), bias, class_names, seed=seed)
    chosen = images.iloc[:n_examples]
    words = plan.words()
    fig, axes = plt.subplots(len(chosen), len(words) + 1, figsize=(1.8 * (len(words) + 1), 1.9 * len(chosen)),
                             squeeze=False)
    for i, row in enumerate(chosen.itertuples()):
        image = load_rgb(row.path)
        for j, (word_set, word) in enumerate([("", "")] + words):
            shown = image if not word else render(image, word, plan.style_of(word_set))
            axes[i, j].imshow(shown)
            axes[i, j].set_axis_off()
            if i == 0:
                axes[i, j].set_title(word or "clean", fontsize=7)
    fig.tight_layout()
    with files.atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
