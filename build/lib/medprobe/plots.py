"""Figures: the UMAP grid of one (dataset, model): n_neighbors rows x min_dist columns, coloured by class."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from medprobe.files import atomic_path
from medprobe.umap_sweep import Sweep, read_layouts

if TYPE_CHECKING:
    import pandas as pd


def class_colours(n_classes: int) -> list[tuple[float, float, float]]:
    """A fixed colour per label index, the same for every model of a dataset."""
    import seaborn as sns

    if n_classes <= 10:
        return sns.color_palette("tab10", n_classes)
    if n_classes <= 20:
        return sns.color_palette("tab20", n_classes)
    return sns.color_palette("husl", n_classes)


def marker_style(n_points: int) -> tuple[float, float]:
    """Marker area and alpha that keep 100 points visible and 30,000 points readable."""
    size = float(np.clip(3000.0 / max(n_points, 1), 0.3, 16.0))
    alpha = float(np.clip(60.0 / np.sqrt(max(n_points, 1)), 0.15, 0.9))
    return size, alpha


def plot_umap_grid(sweep: Sweep, out_png: str | Path, *, title: str = "",
                   class_names: Sequence[str] | None = None, dpi: int = 100,
                   point_labels: np.ndarray | None = None) -> Path:
    """The grid coloured by class, or by `point_labels` (one integer per point; `class_names` then names them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = list(class_names or sweep.attrs.get("class_names") or [])
    labels = sweep.labels if point_labels is None else np.asarray(point_labels)
    n_rows, n_cols = len(sweep.n_neighbors), len(sweep.min_dist)
    colours = class_colours(max(len(names), int(labels.max()) + 1))
    point_colours = np.asarray(colours)[labels]
    size, alpha = marker_style(len(sweep.labels))
    # draw in a fixed shuffled order, so that no class is always painted on top
    order = np.random.default_rng(0).permutation(len(sweep.labels))

    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols + 0.8, 1.9 * n_rows + 1.2), squeeze=False)
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i, j]
            xy = sweep.layouts[i, j]
            ax.scatter(xy[order, 0], xy[order, 1], c=point_colours[order], s=size, alpha=alpha, linewidths=0,
                       rasterized=True)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"min_dist={sweep.min_dist[j]:g}", fontsize=9)
            if j == 0:
                k, k_eff = sweep.n_neighbors[i], sweep.n_neighbors_effective[i]
                label = f"n_neighbors={k}" if k == k_eff else f"n_neighbors={k}\n(clipped to {k_eff})"
                ax.set_ylabel(label, fontsize=8)
    handles = [Line2D([0], [0], marker="o", linestyle="", markersize=6, color=colours[c],
                      label=names[c] if c < len(names) else str(c)) for c in range(len(colours))]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1.0 - 0.15 / fig.get_figheight()))
    heading = title or f"{sweep.attrs.get('dataset_id', '')} / {sweep.attrs.get('model_id', '')}"
    fig.suptitle(f"{heading}  (UMAP, {sweep.attrs.get('metric', '')}, N={len(sweep.labels)})", fontsize=11,
                 y=1.0 - 0.02 / fig.get_figheight())
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.55 / width, right=1 - 0.1 / width, bottom=0.1 / height, top=1 - 0.75 / height,
                        wspace=0.06, hspace=0.06 + 0.15 / 1.9)
    save_indexed_png(fig, out_png, dpi=dpi)
    plt.close(fig)
    return Path(out_png)


def save_indexed_png(fig, out_png: str | Path, *, dpi: int = 100, colours: int = 256) -> Path:
    """A figure of many small points as a PNG of at most `colours` colours (no dithering): a third of the size of the
    true-colour file, the same to the eye (mean |difference| 0.3 of 255 on a 50-layout grid of 1,797 points,
    benchmarks in the README); the report and the explorer's pages load them faster."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png", metadata={"Software": None})
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT,
                                                       dither=Image.Dither.NONE)
    with atomic_path(out_png) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return Path(out_png)


def umap_figure(layouts_path: str | Path, out_png: str | Path, *, title: str = "") -> Path:
    """The `umap_figure` rule."""
    return plot_umap_grid(read_layouts(layouts_path), out_png, title=title)


def attribute_labels(values: Sequence[str], max_values: int = 9) -> tuple[np.ndarray, list[str]]:
    """Integer codes and names for colouring by an attribute: its most common values, the rest as 'other'."""
    values = np.asarray([str(v) for v in values], dtype=object)
    kinds, counts = np.unique(values, return_counts=True)
    top = [k for _, k in sorted(zip(-counts, kinds))][:max_values]
    names = top + (["other"] if len(kinds) > max_values else [])
    index = {k: i for i, k in enumerate(top)}
    return np.asarray([index.get(v, len(top)) for v in values], dtype=np.int64), names


def umap_figure_by(layouts_path: str | Path, manifest_path: str | Path, attribute: str, out_png: str | Path, *,
                   title: str = "") -> Path:
    """The `umap_figure_by` rule: the same grid, coloured by a nuisance attribute of the manifest (umap.color_by)."""
    from medprobe.manifest import read_manifest
    from medprobe.nuisance import nuisance_attributes

    sweep = read_layouts(layouts_path)
    manifest = read_manifest(manifest_path).set_index("sample_id", drop=False)
    rows = manifest.loc[list(sweep.sample_id)].reset_index(drop=True)
    available = nuisance_attributes(rows, max_unique_share=1.0)
    if attribute in available:
        codes, names = attribute_labels(available[attribute])
        heading = f"{title}, coloured by {attribute}"
    else:  # one value only, or not released for this dataset (no groups): say so on the figure
        codes, names = np.zeros(len(rows), dtype=np.int64), [f"{attribute}: a single value or not released"]
        heading = f"{title}, {attribute}: nothing to colour"
    return plot_umap_grid(sweep, out_png, title=heading, class_names=names, point_labels=codes)


SUMMARY_COLUMNS = {
    "features kNN acc": ("features", "knn_accuracy", None),
    "features silhouette": ("features", "silhouette", None),
    "UMAP trust (best)": ("umap", "trustworthiness", "max"),
    "UMAP kNN acc (best)": ("umap", "knn_accuracy", "max"),
    "UMAP silhouette (best)": ("umap", "silhouette", "max"),
    "UMAP trust 15/0.1": ("umap", "trustworthiness", (15, 0.1)),
    "UMAP kNN acc 15/0.1": ("umap", "knn_accuracy", (15, 0.1)),
}


def summarize_layout_metrics(tables, models: dict[str, str]) -> pd.DataFrame:
    """One row per model: the feature space's metrics, the best layout's and the reference layout's (15 / 0.1)."""
    import pandas as pd

    rows = []
    for table in tables:
        model_id = table["model"].iloc[0]
        row = {"model": models.get(model_id, model_id)}
        for column, (space, metric, pick) in SUMMARY_COLUMNS.items():
            part = table[table["space"] == space]
            if pick == "max":
                row[column] = part[metric].max()
            elif isinstance(pick, tuple):
                hit = part[(part["n_neighbors"] == pick[0]) & (part["min_dist"] == pick[1])]
                row[column] = hit[metric].iloc[0] if len(hit) else float("nan")
            else:
                row[column] = part[metric].iloc[0] if len(part) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def umap_summary(metrics_paths, out_png, out_table, *, models: dict[str, str], title: str = "") -> Path:
    """The `umap_summary` rule: a models x metrics heatmap of one dataset, and the numbers behind it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from medprobe import files

    summary = summarize_layout_metrics([pd.read_csv(p, sep="\t") for p in metrics_paths], models)
    files.write_tsv(out_table, summary.reset_index())
    fig, ax = plt.subplots(figsize=(1.3 * summary.shape[1] + 3, 0.45 * summary.shape[0] + 2))
    sns.heatmap(summary, annot=True, fmt=".2f", cmap="viridis", vmin=min(0.0, float(summary.min().min())), vmax=1.0,
                cbar_kws={"label": "score"}, ax=ax)
    ax.set_ylabel("")
    ax.set_title(f"{title}: class separation and neighbourhood preservation")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)
    return Path(out_png)


def runtime_figure(summary: pd.DataFrame, out_png: str | Path) -> None:
    """Total wall time and peak memory per rule, two horizontal bar panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = max(2.5, 0.35 * len(summary) + 1.2)
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, height), sharey=True)
    labels = [f"{rule} ({jobs})" for rule, jobs in zip(summary.rule, summary.jobs)]
    ax_time.barh(labels, summary.total_s, color="#4c72b0")
    ax_time.set_xlabel("total wall time (s), all jobs of the rule")
    ax_time.invert_yaxis()
    ax_mem.barh(labels, summary.max_rss_mb.fillna(0), color="#dd8452")
    ax_mem.set_xlabel("largest peak RSS of one job (MB)")
    for ax in (ax_time, ax_mem):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Runtime per rule (from benchmarks/; number of jobs in brackets)")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
