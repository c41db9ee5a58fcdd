"""Few-shot results at a glance, for every few-shot protocol (medprobe's `fewshot`, the DLILP study's `transfer`):
a table pivoted to models x K per dataset (mean ± std in percent), and a figure of the metric against K per model
with its spread over the seeds or folds (a band of ± 1 std), one panel per dataset, as the study's own few-shot
figure draws it.

Input: a summary with columns dataset, model, shots, metric, mean, std, n (medprobe.tables.protocol_summary).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from medprobe.files import atomic_path
from medprobe.tables import format_cell


def shot_order(values) -> list:
    """K values in numeric order ("16" < "100"; anything not a number last, in text order)."""
    def key(value):
        text = str(value)
        return (0, float(text), "") if text.replace(".", "", 1).isdigit() else (1, 0.0, text)

    return sorted({str(v) for v in values}, key=key)


def pivot_by_shots(summary: pd.DataFrame, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping], *,
                   metric: str, decimals: int = 1) -> pd.DataFrame:
    """Rows (dataset, model) in configuration order, one column per K: "mean ± std" of `metric` in percent."""
    part = summary[summary["metric"] == metric].copy()
    part["shots"] = part["shots"].astype(str)
    ks = shot_order(part["shots"])
    rows = []
    for dataset_id in datasets:
        for model_id in models:
            hit = part[(part["dataset"] == dataset_id) & (part["model"] == model_id)].set_index("shots")
            if hit.empty:
                continue
            row = {"dataset": datasets[dataset_id]["name"], "model": models[model_id]["name"]}
            for k in ks:
                if k in hit.index:
                    std = hit.loc[k, "std"] if hit.loc[k, "n"] > 1 and not np.isnan(hit.loc[k, "std"]) else 0.0
                    row[f"{k}-shot"] = format_cell(hit.loc[k, "mean"], std, decimals, decimals)
                else:
                    row[f"{k}-shot"] = "–"
            rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "model"] + [f"{k}-shot" for k in ks])


def pivot_markdown(pivot: pd.DataFrame, title: str) -> str:
    if pivot.empty:
        return f"{title}: nothing to report.\n"
    lines = [title, "", "| " + " | ".join(pivot.columns) + " |",
             "|---|---|" + "|".join([":-:"] * (len(pivot.columns) - 2)) + "|"]
    previous = None
    for row in pivot.itertuples(index=False):
        cells = [str(c) for c in row]
        if cells[0] == previous:
            cells[0] = ""
        else:
            previous = cells[0]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_shots(summary: pd.DataFrame, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping],
               out_png: str | Path, *, metric: str, ylabel: str, title: str = "", scale: float = 100.0) -> Path:
    """One panel per dataset: `metric` against K (log2 axis) per model, mean line and ± 1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    part = summary[summary["metric"] == metric].copy()
    present = [d for d in datasets if (part["dataset"] == d).any()] or list(datasets)[:1]
    model_ids = [m for m in models if (part["model"] == m).any()]
    colours = dict(zip(model_ids, sns.color_palette("tab20" if len(model_ids) > 10 else "tab10",
                                                      max(len(model_ids), 1))))
    n_cols = min(4, len(present))
    n_rows = int(np.ceil(len(present) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols + 0.5, 3.0 * n_rows + 1.2), squeeze=False)
    for ax, dataset_id in zip(axes.flat, present):
        for model_id in model_ids:
            hit = part[(part["dataset"] == dataset_id) & (part["model"] == model_id)]
            hit = hit[hit["shots"].astype(str).str.replace(".", "", n=1).str.isdigit()]
            if hit.empty:
                continue
            hit = hit.assign(k=hit["shots"].astype(float)).sort_values("k")
            mean = scale * hit["mean"].to_numpy(dtype=float)
            std = scale * np.nan_to_num(hit["std"].to_numpy(dtype=float))
            ax.plot(hit["k"], mean, marker="o", markersize=3, linewidth=1.3, color=colours[model_id],
                    label=models[model_id]["name"])
            ax.fill_between(hit["k"], mean - std, mean + std, color=colours[model_id], alpha=0.15, linewidth=0)
        ax.set_xscale("log", base=2)
        ks = sorted(part.loc[part["dataset"] == dataset_id, "shots"].astype(str).pipe(
            lambda s: s[s.str.replace(".", "", n=1).str.isdigit()]).astype(float).unique())
        if ks:
            ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.set_title(datasets[dataset_id]["name"], fontsize=10)
        ax.set_xlabel("shots per class (K)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    legend_rows = int(np.ceil(len(labels) / 5)) if handles else 0
    fig.tight_layout(rect=(0, 0.04 * legend_rows + 0.02, 1, 0.95 if title else 1))
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out_png


def write_shot_views(summary_tsv: str | Path, *, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping],
                     out_tsv: str | Path, out_md: str | Path, out_html: str | Path, out_png: str | Path,
                     metric: str = "accuracy") -> None:
    """The `fewshot_table` rule's views of its summary (medprobe.tables.protocol_summary): pivot and figure."""
    from medprobe import files
    from medprobe.report import html_table

    summary = pd.read_csv(summary_tsv, sep="\t", dtype={"shots": str})
    pivot = pivot_by_shots(summary, models, datasets, metric=metric)
    title = f"Few-shot linear probe: hold-out {metric.replace('_', ' ')} x 100 against K (mean ± std over draws)"
    files.write_tsv(out_tsv, pivot)
    files.write_text(out_md, pivot_markdown(pivot, title))
    files.write_text(out_html, html_table(pivot, title))
    plot_shots(summary, models, datasets, out_png, metric=metric, ylabel=f"hold-out {metric.replace('_', ' ')} (%)",
               title="Few-shot linear probe: " + metric.replace("_", " ") + " against K")
