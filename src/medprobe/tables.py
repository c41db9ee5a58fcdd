"""Aggregation: every probe file -> the paper table (a pure function of the probe files and the registries).

results/tables/summary.tsv      tidy: dataset, model, eval, metric, n_classes, mean, std, n_folds, values
results/tables/paper_table.tsv  the poster's layout: one row per model (grouped), columns dataset x {accuracy, F1},
                                cells "mean ± std" in percent
results/tables/paper_table.md   the same, for reading
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from medprobe import files
from medprobe.probe import read_probe

SUMMARY_COLUMNS = ["dataset", "model", "eval", "metric", "n_classes", "mean", "std", "n_folds", "values"]


def summarize(probes: pd.DataFrame, ddof: int = 0) -> pd.DataFrame:
    """Mean, std and the fold values of every (dataset, model, eval, metric)."""
    rows = []
    keys = ["dataset", "model", "eval", "metric"]
    for key, group in probes.sort_values("fold").groupby(keys, sort=True):
        values = group["value"].to_numpy(dtype=float)
        rows.append(dict(zip(keys, key), n_classes=int(group["n_classes"].iloc[0]), mean=float(values.mean()),
                         std=float(values.std(ddof=ddof)) if len(values) > ddof else float("nan"),
                         n_folds=len(values), values=";".join(f"{v:.6f}" for v in values)))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def f1_metric(n_classes: int, mode: str = "poster") -> str:
    """The poster's F-score: F1 of label 1 on two-class datasets, macro-F1 otherwise; `macro`: macro-F1 always."""
    return "f1_binary" if mode == "poster" and n_classes == 2 else "f1_macro"


def format_cell(mean: float, std: float, mean_decimals: int = 0, std_decimals: int = 1) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{100 * mean:.{mean_decimals}f} ± {100 * std:.{std_decimals}f}"


def paper_table(summary: pd.DataFrame, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping], *,
                f1: str = "poster", mean_decimals: int = 0, std_decimals: int = 1,
                eval_name: str = "holdout") -> pd.DataFrame:
    """Rows: models in the given order, gathered into their groups (first appearance order); columns: for each
    dataset in the given order, '<name> accuracy' and '<name> F1'."""
    scores = summary[summary["eval"] == eval_name].set_index(["dataset", "model", "metric"])
    group_order = list(dict.fromkeys(spec["group"] for spec in models.values()))
    ordered = sorted(models, key=lambda m: group_order.index(models[m]["group"]))
    rows = []
    for model_id in ordered:
        spec = models[model_id]
        row = {"group": spec["group"], "model": spec["name"], "backbone": spec["backbone"]}
        for dataset_id, dspec in datasets.items():
            key = (dataset_id, model_id, "accuracy")
            n_classes = int(scores.loc[key]["n_classes"]) if key in scores.index else len(dspec.get("classes", []))
            for label, metric in (("accuracy", "accuracy"), ("F1", f1_metric(n_classes, f1))):
                key = (dataset_id, model_id, metric)
                if key in scores.index:
                    cell = scores.loc[key]
                    row[f"{dspec['name']} {label}"] = format_cell(cell["mean"], cell["std"], mean_decimals,
                                                                  std_decimals)
                else:
                    row[f"{dspec['name']} {label}"] = "–"
        rows.append(row)
    return pd.DataFrame(rows)


def table_notes(datasets: Mapping[str, Mapping], f1: str, n_folds: int, std_ddof: int) -> list[str]:
    notes = [f"Mean ± std in percent over the {n_folds} CV fold models, each scored on the same hold-out "
             f"(std with ddof={std_ddof}). LinearSVC on standardized features, C = 100 / n_train."]
    if f1 == "poster":
        positives = [f"{spec['name']}: {spec['classes'][1]}" for spec in datasets.values()
                     if len(spec.get("classes", [])) == 2]
        text = "F1 is the poster's F-score: F1 of label 1 on two-class datasets, macro-F1 otherwise."
        if positives:
            text += " Label 1 is " + "; ".join(positives) + "."
        notes.append(text)
    else:
        notes.append("F1 is macro-F1 on every dataset.")
    return notes


def shared_towers(records: Sequence[Mapping], models: Mapping[str, Mapping]) -> list[str]:
    """One note per set of models whose image-tower weights are byte-identical (same sha256)."""
    by_hash: dict[str, list[str]] = {}
    for record in records:
        if record.get("tower_sha256") and record["model_id"] in models:
            by_hash.setdefault(record["tower_sha256"], []).append(record["model_id"])
    notes = []
    for digest, ids in sorted(by_hash.items(), key=lambda item: item[1]):
        if len(ids) > 1:
            names = ", ".join(models[i]["name"] for i in ids)
            notes.append(f"{names} share byte-identical image-tower weights (sha256 {digest[:12]}…): their tower "
                         f"features are identical, so they differ only after the tower (feature point: "
                         + ", ".join(f"{models[i]['name']} {models[i]['feature_point']}" for i in ids) + ").")
    return notes


def to_markdown(table: pd.DataFrame, notes: Sequence[str] = ()) -> str:
    columns = [c for c in table.columns if c != "backbone"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---"] * 2 + [":-:"] * (len(columns) - 2)) + "|"]
    previous_group = None
    for _, row in table.iterrows():
        cells = [str(row[c]) for c in columns]
        if row["group"] == previous_group:
            cells[0] = ""
        previous_group = row["group"]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    return text


def make_tables(probe_paths: Sequence[str | Path], *, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping],
                out_tsv: str | Path, out_md: str | Path, out_summary: str | Path, f1: str = "poster",
                std_ddof: int = 0, mean_decimals: int = 0, std_decimals: int = 1,
                weights_records: Sequence[str | Path] = ()) -> pd.DataFrame:
    """The `paper_table` rule."""
    import json

    probes = pd.concat([read_probe(p) for p in probe_paths], ignore_index=True)
    records = [json.loads(Path(p).read_text()) for p in weights_records]
    summary = summarize(probes, ddof=std_ddof)
    table = paper_table(summary, models, datasets, f1=f1, mean_decimals=mean_decimals, std_decimals=std_decimals)
    n_folds = int(summary["n_folds"].max()) if len(summary) else 0
    files.write_tsv(out_summary, summary)
    files.write_tsv(out_tsv, table)
    notes = table_notes(datasets, f1, n_folds, std_ddof) + shared_towers(records, models)
    files.write_text(out_md, to_markdown(table, notes))
    return table
