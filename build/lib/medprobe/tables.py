"""Aggregation: every probe file -> the paper table (a pure function of the probe files and the registries).

results/tables/summary.tsv      tidy: dataset, model, eval, metric, n_classes, mean, std, n_folds, values
results/tables/paper_table.tsv  the poster's layout: one row per model (grouped), columns dataset x {accuracy, F1},
                                cells "mean ± std" in percent
results/tables/paper_table.md   the same, for reading; paper_table.tex for LaTeX (booktabs)
results/tables/vs_published.{tsv,md}  our cell beside the poster's, the difference, and a flag where the published
                                      cell is known to be unreliable
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


def convergence_notes(probes: pd.DataFrame) -> list[str]:
    """The fold models whose solver stopped before converging: their cells are marked in the notes, never hidden."""
    if "converged" not in probes.columns:
        return []
    stopped = probes[~probes["converged"].astype(bool)][["dataset", "model", "fold"]].drop_duplicates()
    if stopped.empty:
        return []
    cells = stopped.groupby(["dataset", "model"])["fold"].apply(lambda f: ", ".join(str(int(k)) for k in sorted(f)))
    listing = "; ".join(f"{dataset}/{model} (fold {folds})" for (dataset, model), folds in cells.items())
    return [f"Not converged (the solver stopped at its iteration budget or stalled; see the probe logs): {listing}."]


def provenance_notes(records: Sequence[Mapping], embedding_attrs: Sequence[Mapping],
                     models: Mapping[str, Mapping]) -> list[str]:
    """How the embeddings were extracted (exact, or which speed-ups ran) and the exact weights each model used: the
    Hugging Face repository and commit of every file, or its URL or local path and sha256. First, the medprobe version
    that made the table, and the versions that wrote the embeddings where they differ."""
    import medprobe

    written_by = sorted({str(attrs.get("medprobe_version", "unknown")) for attrs in embedding_attrs})
    notes = [f"medprobe {medprobe.__version__}" + (
        f"; embeddings written by medprobe {', '.join(written_by)}" if written_by not in ([], [medprobe.__version__])
        else "") + "."]
    if embedding_attrs:
        modes: dict[str, list[str]] = {}
        for attrs in embedding_attrs:
            modes.setdefault(attrs.get("extraction_mode", "exact"), []).append(
                f"{models.get(attrs.get('model_id'), {}).get('name', attrs.get('model_id'))}/{attrs.get('dataset_id')}")
        if set(modes) == {"exact"}:
            notes.append(f"Embeddings: exact, as the official pipelines run (full image decoding, fp32, the official "
                         f"memory layout), all {len(embedding_attrs)} files.")
        else:
            notes.append("Embeddings: " + "; ".join(f"{mode} for {', '.join(sorted(which))}"
                                                    for mode, which in sorted(modes.items())) + ".")
    sources = []
    for record in records:
        model_id = record.get("model_id")
        if model_id not in models or not record.get("files"):
            continue
        parts = []
        for role, entry in sorted(record["files"].items()):
            if role.startswith("text_"):
                continue
            if entry.get("repo") or entry.get("revision"):
                where = f"{entry.get('repo', '')}@{entry.get('revision', 'unpinned')[:12]}"
            else:
                where = f"{entry.get('url') or Path(entry['path']).name} (sha256 {entry['sha256'][:12]})"
            if where not in parts:
                parts.append(where)
        sources.append(f"{models[model_id]['name']}: {', '.join(parts)}")
    if sources:
        notes.append("Weights: " + "; ".join(sources) + ".")
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


VS_PUBLISHED_COLUMNS = ["group", "model", "dataset", "metric", "ours_mean_pct", "ours_std_pct", "published_mean_pct",
                        "published_std_pct", "delta_pp", "marker", "flag"]


def read_published(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"marker": str}, keep_default_na=False)


def published_flags(published: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """Cells known to be unreliable: the poster's BreastUS column repeats its BrainMR column."""
    flags = {}
    cells = published.set_index(["model", "dataset", "metric"])
    for (model, dataset, metric), row in cells.iterrows():
        if dataset == "BreastUS" and (model, "BrainMR", metric) in cells.index:
            brain = cells.loc[(model, "BrainMR", metric)]
            if brain["mean_pct"] == row["mean_pct"] and brain["std_pct"] == row["std_pct"]:
                flags[(model, dataset, metric)] = "copy of the BrainMR cell in the source: not a BreastUS result"
    return flags


def vs_published(summary: pd.DataFrame, published: pd.DataFrame, models: Mapping[str, Mapping],
                 datasets: Mapping[str, Mapping], *, f1: str = "poster", eval_name: str = "holdout") -> pd.DataFrame:
    """Our hold-out mean and std (percent) beside the poster's, joined on the display names of both registries."""
    scores = summary[summary["eval"] == eval_name].set_index(["dataset", "model", "metric"])
    flags = published_flags(published)
    rows = []
    for cell in published.itertuples():
        model_id = next((m for m, spec in models.items() if spec["name"] == cell.model), None)
        dataset_id = next((d for d, spec in datasets.items() if spec["name"] == cell.dataset), None)
        if model_id is None or dataset_id is None:
            continue
        key_accuracy = (dataset_id, model_id, "accuracy")
        if key_accuracy not in scores.index:
            continue
        n_classes = int(scores.loc[key_accuracy]["n_classes"])
        metric = "accuracy" if cell.metric == "accuracy" else f1_metric(n_classes, f1)
        ours = scores.loc[(dataset_id, model_id, metric)]
        ours_mean, ours_std = 100.0 * float(ours["mean"]), 100.0 * float(ours["std"])
        rows.append(dict(group=cell.group, model=cell.model, dataset=cell.dataset, metric=cell.metric,
                         ours_mean_pct=round(ours_mean, 2), ours_std_pct=round(ours_std, 2),
                         published_mean_pct=float(cell.mean_pct), published_std_pct=float(cell.std_pct),
                         delta_pp=round(ours_mean - float(cell.mean_pct), 2), marker=cell.marker,
                         flag=flags.get((cell.model, cell.dataset, cell.metric), "")))
    return pd.DataFrame(rows, columns=VS_PUBLISHED_COLUMNS)


def vs_published_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return ("No model and dataset of this run appears in the published table (resources/published_table.tsv); "
                "nothing to compare.\n")
    lines = ["| model | dataset | metric | ours | published | delta (pp) | flag |", "|---|---|---|--:|--:|--:|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.model} | {row.dataset} | {row.metric} | {row.ours_mean_pct:.1f} ± {row.ours_std_pct:.1f} "
                     f"| {row.published_mean_pct:g} ± {row.published_std_pct:g}{row.marker} | {row.delta_pp:+.1f} "
                     f"| {row.flag} |")
    return "\n".join(lines) + "\n\nPublished: the poster's scores; markers: * modality in pre-training, ** the dataset " \
        "itself in pre-training, u uncertain. Flagged cells are known to be wrong in the source.\n"


def to_latex(table: pd.DataFrame, notes: Sequence[str] = ()) -> str:
    body = table.drop(columns=["backbone"]).copy()
    body.loc[body["group"].duplicated(), "group"] = ""
    latex = body.to_latex(index=False, escape=True, column_format="ll" + "c" * (body.shape[1] - 2))
    latex = latex.replace("±", "$\\pm$")
    comment = "".join(f"% {note}\n" for note in notes)
    return comment + latex


def make_tables(probe_paths: Sequence[str | Path], *, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping],
                out_tsv: str | Path, out_md: str | Path, out_summary: str | Path, out_tex: str | Path | None = None,
                published: str | Path | None = None, out_vs_tsv: str | Path | None = None,
                out_vs_md: str | Path | None = None, f1: str = "poster", std_ddof: int = 0, mean_decimals: int = 0,
                std_decimals: int = 1, weights_records: Sequence[str | Path] = (),
                embeddings: Sequence[str | Path] = ()) -> pd.DataFrame:
    """The `paper_table` rule."""
    import json

    from medprobe.store import read_attrs

    probes = pd.concat([read_probe(p) for p in probe_paths], ignore_index=True)
    records = [json.loads(Path(p).read_text()) for p in weights_records]
    embedding_attrs = [read_attrs(p) for p in embeddings]
    summary = summarize(probes, ddof=std_ddof)
    table = paper_table(summary, models, datasets, f1=f1, mean_decimals=mean_decimals, std_decimals=std_decimals)
    n_folds = int(summary["n_folds"].max()) if len(summary) else 0
    files.write_tsv(out_summary, summary)
    files.write_tsv(out_tsv, table)
    notes = (table_notes(datasets, f1, n_folds, std_ddof) + shared_towers(records, models)
             + provenance_notes(records, embedding_attrs, models) + convergence_notes(probes))
    files.write_text(out_md, to_markdown(table, notes))
    if out_tex:
        files.write_text(out_tex, to_latex(table, notes))
    if published and out_vs_tsv:
        compared = vs_published(summary, read_published(published), models, datasets, f1=f1)
        files.write_tsv(out_vs_tsv, compared)
        if out_vs_md:
            files.write_text(out_vs_md, vs_published_markdown(compared))
    return table


def protocol_summary(paths: Sequence[str | Path], keys: Sequence[str], ddof: int = 0) -> pd.DataFrame:
    """mean, std and n of the few-shot (keys: shots) or zero-shot (keys: prompt_set) rows of every model."""
    frames = [pd.read_csv(p, sep="\t") for p in paths]
    table = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else None
    columns = ["dataset", "model", *keys, "metric", "mean", "std", "n"]
    if table is None:
        return pd.DataFrame(columns=columns)
    grouped = table.groupby(["dataset", "model", *keys, "metric"], sort=True)["value"]
    summary = grouped.agg(mean="mean", std=lambda v: float(np.std(v, ddof=ddof)) if len(v) > ddof else np.nan,
                          n="size").reset_index()
    return summary[columns]


def protocol_markdown(summary: pd.DataFrame, key: str, models: Mapping[str, Mapping],
                      datasets: Mapping[str, Mapping], title: str, metric: str = "accuracy") -> str:
    """Rows models, columns dataset x key (shots or prompt set); hold-out accuracy mean ± std in percent."""
    if summary.empty:
        return f"{title}: nothing to report (no model of this run supports it).\n"
    part = summary[summary["metric"] == metric]
    def order(value):
        return (0, float(value), "") if str(value).replace(".", "", 1).isdigit() else (1, 0.0, str(value))

    columns = [(d, v) for d in datasets for v in sorted(part.loc[part["dataset"] == d, key].unique(), key=order)]
    header = ["model"] + [f"{datasets[d]['name']} {v}{'-shot' if key == 'shots' else ''}" for d, v in columns]
    lines = [f"{title} (hold-out {metric}, mean ± std in percent)", "", "| " + " | ".join(header) + " |",
             "|---|" + "|".join([":-:"] * len(columns)) + "|"]
    for model_id in models:
        cells = []
        for d, v in columns:
            hit = part[(part["dataset"] == d) & (part["model"] == model_id) & (part[key] == v)]
            cells.append(format_cell(hit["mean"].iloc[0], hit["std"].iloc[0] if hit["n"].iloc[0] > 1 else 0.0, 1, 1)
                         if len(hit) else "–")
        if any(c != "–" for c in cells):
            lines.append(f"| {models[model_id]['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def make_protocol_table(paths: Sequence[str | Path], key: str, *, models: Mapping[str, Mapping],
                        datasets: Mapping[str, Mapping], out_tsv: str | Path, out_md: str | Path, title: str) -> None:
    """The `fewshot_table` / `zeroshot_table` rules."""
    summary = protocol_summary(paths, [key])
    files.write_tsv(out_tsv, summary)
    files.write_text(out_md, protocol_markdown(summary, key, models, datasets, title))
