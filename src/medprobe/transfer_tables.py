"""The DLILP study's tables from the `transfer` files: Table 4's layout (models x datasets, ACA x 100 at the study's
K, mean ± std over folds, "Avg." = plain mean of the dataset means, as the paper computes it), the comparison with
the published Table 4 (resources/dlilp/published_table4.tsv) with deltas, and the few-shot views of every K (a table
pivoted to models x K, and the figure of ACA against K; medprobe.shots).

results/tables/transfer_summary.tsv     tidy: dataset, model, shots, metric, mean, std, n (the authors' rounding)
results/tables/table4.{tsv,md,tex,html} Table 4's layout
results/tables/table4_vs_published.{tsv,md,html}
results/tables/transfer_shots.{tsv,md,html} and results/figures/transfer_shots.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from medprobe import files
from medprobe.report import html_table
from medprobe.shots import pivot_by_shots, pivot_markdown, plot_shots
from medprobe.transfer import ZEROSHOT_COLUMNS, summarize_folds

SUMMARY_COLUMNS = ["dataset", "model", "shots", "metric", "mean", "std", "n", "test_set", "values"]
VS_COLUMNS = ["model_id", "model", "pretraining_data", "dataset_id", "dataset", "ours_mean_pct", "ours_std_pct",
              "published_pct", "delta_pp", "within_1_std"]


def transfer_summary(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Mean and std (np.std, rounded to 4 decimals as the authors' average_folds_results) per cell."""
    frames = [pd.read_csv(p, sep="\t", dtype={"shots": str}) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    rows = []
    for (dataset, model, shots, metric), group in table.sort_values("fold").groupby(
            ["dataset", "model", "shots", "metric"], sort=False):
        mean, std = summarize_folds(group["value"])
        rows.append(dict(dataset=dataset, model=model, shots=str(shots), metric=metric, mean=mean, std=std,
                         n=len(group), test_set=group["test_set"].iloc[0],
                         values=";".join(f"{v:.3f}" for v in group["value"])))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def table4(summary: pd.DataFrame, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping], *,
           shots: str, metric: str = "aca") -> pd.DataFrame:
    """One row per model (configuration order): model, pretraining data, per dataset "mean ± std" (x 100, two
    decimals as published) and Avg. (mean of the row's dataset means, over the datasets it has)."""
    part = summary[(summary["metric"] == metric) & (summary["shots"].astype(str) == str(shots))]
    cells = part.set_index(["model", "dataset"])
    rows = []
    for model_id, spec in models.items():
        row = {"model": spec["name"], "pretraining_data": spec.get("pretraining_data", "")}
        means = []
        for dataset_id, dspec in datasets.items():
            if (model_id, dataset_id) in cells.index:
                cell = cells.loc[(model_id, dataset_id)]
                means.append(100 * float(cell["mean"]))
                row[dspec["name"]] = f"{100 * float(cell['mean']):.2f} ± {100 * float(cell['std']):.2f}"
            else:
                row[dspec["name"]] = "–"
        if not means:
            continue
        row["Avg."] = f"{np.mean(means):.2f}" + ("" if len(means) == len(datasets) else f" ({len(means)} datasets)")
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "pretraining_data", *[d["name"] for d in datasets.values()], "Avg."])


def vs_published(summary: pd.DataFrame, published: pd.DataFrame, models: Mapping[str, Mapping],
                 datasets: Mapping[str, Mapping], *, shots: str, metric: str = "aca") -> pd.DataFrame:
    """Each published cell whose model and dataset this run has: ours (mean, std x 100), published, ours - published,
    and whether the published value lies within one of our fold std of our mean."""
    part = summary[(summary["metric"] == metric) & (summary["shots"].astype(str) == str(shots))]
    cells = part.set_index(["model", "dataset"])
    rows = []
    for cell in published.itertuples():
        key = (cell.model_id, cell.dataset_id)
        if cell.model_id not in models or cell.dataset_id not in datasets or key not in cells.index:
            continue
        mean, std = 100 * float(cells.loc[key, "mean"]), 100 * float(cells.loc[key, "std"])
        rows.append(dict(model_id=cell.model_id, model=models[cell.model_id]["name"],
                         pretraining_data=cell.pretraining_data, dataset_id=cell.dataset_id,
                         dataset=datasets[cell.dataset_id]["name"], ours_mean_pct=round(mean, 2),
                         ours_std_pct=round(std, 2), published_pct=float(cell.aca_pct),
                         delta_pp=round(mean - float(cell.aca_pct), 2),
                         within_1_std=bool(abs(mean - float(cell.aca_pct)) <= std)))
    return pd.DataFrame(rows, columns=VS_COLUMNS)


def markdown_table(frame: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    if frame.empty:
        return f"{title}: nothing to report.\n"
    lines = [title, "", "| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "|".join("---" if i < 2 else ":-:" for i in range(len(frame.columns))) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else "")


def to_latex(frame: pd.DataFrame, notes: Sequence[str] = ()) -> str:
    latex = frame.to_latex(index=False, escape=True, column_format="ll" + "c" * (frame.shape[1] - 2))
    return "".join(f"% {n}\n" for n in notes) + latex.replace("±", "$\\pm$")


def write_html(path: str | Path, frame: pd.DataFrame, title: str, note: str = "") -> None:
    files.write_text(path, html_table(frame, title, note or None))


def make_transfer_tables(paths: Sequence[str | Path], *, models: Mapping[str, Mapping],
                         datasets: Mapping[str, Mapping], table_shots: str, published: str | Path | None,
                         outputs: Mapping[str, str | Path], folds: int) -> pd.DataFrame:
    """The `transfer_tables` rule: every output named in `outputs` (see the module docstring)."""
    summary = transfer_summary(paths)
    files.write_tsv(outputs["summary"], summary)
    notes = [f"ACA (balanced accuracy) x 100 of the logistic-regression probe on {table_shots} shots per class, mean "
             f"± std over {folds} folds (np.std; each fold rounded to 3 decimals, as the authors' metrics.py); Avg. = "
             f"mean of the dataset means. Protocol of jusiro/DLILP@2c9d301 (medprobe.transfer)."]
    table = table4(summary, models, datasets, shots=table_shots)
    files.write_tsv(outputs["table"], table)
    title = f"Table 4 layout: {table_shots}-shot linear probing (ACA x 100)"
    files.write_text(outputs["markdown"], markdown_table(table, title, notes))
    files.write_text(outputs["latex"], to_latex(table, notes))
    write_html(outputs["html"], table, title, notes[0])

    compared = vs_published(summary, pd.read_csv(published, sep="\t", dtype=str) if published else
                            pd.DataFrame(columns=["model_id", "dataset_id", "pretraining_data", "aca_pct"]),
                            models, datasets, shots=table_shots)
    files.write_tsv(outputs["vs_published"], compared)
    vs_title = "Reproduced vs published Table 4 (ACA x 100; delta = ours - published, percentage points)"
    vs_notes = ["Published: the authors' IPMI 2025 slides (resources/dlilp/README.md); no std is published."]
    if len(compared):
        vs_notes.append(f"Mean |delta| {compared['delta_pp'].abs().mean():.2f} pp over {len(compared)} cells; "
                        f"{int(compared['within_1_std'].sum())} within one fold std.")
    files.write_text(outputs["vs_published_md"], markdown_table(compared, vs_title, vs_notes))
    write_html(outputs["vs_published_html"], compared, vs_title, " ".join(vs_notes))

    by_k = pivot_by_shots(summary.rename(columns={}), models, datasets, metric="aca", decimals=1)
    files.write_tsv(outputs["shots_table"], by_k)
    k_title = "ACA x 100 against the number of shots per class K (mean ± std over folds)"
    files.write_text(outputs["shots_markdown"], pivot_markdown(by_k, k_title))
    write_html(outputs["shots_html"], by_k, k_title)
    plot_shots(summary, models, datasets, outputs["shots_figure"], metric="aca", ylabel="ACA (%)",
               title="Linear probing (DLILP protocol): ACA against K")
    return table


# ---------------------------------------------------------------- Table 3 (zero-shot, medprobe.cxr_zeroshot)
PROMPT_LABELS = {"names": "Name", "ensemble": "Desc.", "description": "Desc. (descriptions)"}
NOT_REPRODUCIBLE = {
    "medklip": "not reproducible: in jusiro/DLILP@2c9d301 load_from_pretrained's MedKLIP branch replaces the vision "
               "model by the ResNet-50 trunk (1,024-d) and loads no projection or text weights of MedKLIP, so the "
               "published zero-shot scores come from heads the released code does not define",
}
TABLE3_VS_COLUMNS = ["model_id", "model", "dataset_id", "dataset", "published_prompts", "our_prompts", "head",
                     "ours_pct", "published_pct", "delta_pp"]


def zeroshot_results(paths: Sequence[str | Path]) -> pd.DataFrame:
    frames = [pd.read_csv(p, sep="\t") for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=ZEROSHOT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _prompt_label(prompt_set: str, desc_prompt_set: str) -> str:
    return "Desc." if prompt_set == desc_prompt_set else PROMPT_LABELS.get(prompt_set, prompt_set)


def table3(results: pd.DataFrame, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping], *,
           prompt_sets: Sequence[str], desc_prompt_set: str = "ensemble", metric: str = "aca") -> pd.DataFrame:
    """One row per model (configuration order): model, pretraining data, the head that scored (text prompts or the
    label prototypes), then per dataset and prompt set ACA x 100 (one decimal, as published; one fold)."""
    part = results[results["metric"] == metric].set_index(["model", "dataset", "prompt_set"])
    columns = [(d, p, f"{dspec['name']} {_prompt_label(p, desc_prompt_set)}")
               for d, dspec in datasets.items() for p in prompt_sets]
    rows = []
    for model_id, spec in models.items():
        heads = results.loc[results["model"] == model_id, "head"].unique()
        if not len(heads):
            continue
        row = {"model": spec["name"], "pretraining_data": spec.get("pretraining_data", ""),
               "head": "/".join(sorted(heads))}
        for dataset_id, prompt_set, label in columns:
            key = (model_id, dataset_id, prompt_set)
            row[label] = f"{100 * float(part.loc[key, 'value']):.1f}" if key in part.index else "–"
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "pretraining_data", "head", *[c[2] for c in columns]])


def table3_vs_published(results: pd.DataFrame, published: pd.DataFrame, models: Mapping[str, Mapping],
                        datasets: Mapping[str, Mapping], *, desc_prompt_set: str = "ensemble",
                        metric: str = "aca") -> pd.DataFrame:
    """Each published cell this run has: "names" against our names, "descriptions" against `desc_prompt_set` (the
    authors' default ensemble: resources/dlilp/README.md); ours, published, ours - published (percentage points)."""
    part = results[results["metric"] == metric].set_index(["model", "dataset", "prompt_set"])
    ours_for = {"names": "names", "descriptions": desc_prompt_set}
    rows = []
    for cell in published.itertuples():
        ours_set = ours_for.get(cell.prompt_set, cell.prompt_set)
        key = (cell.model_id, cell.dataset_id, ours_set)
        if cell.model_id not in models or cell.dataset_id not in datasets or key not in part.index:
            continue
        ours = 100 * float(part.loc[key, "value"])
        rows.append(dict(model_id=cell.model_id, model=models[cell.model_id]["name"], dataset_id=cell.dataset_id,
                         dataset=datasets[cell.dataset_id]["name"], published_prompts=cell.prompt_set,
                         our_prompts=ours_set, head=part.loc[key, "head"], ours_pct=round(ours, 1),
                         published_pct=float(cell.aca_pct), delta_pp=round(ours - float(cell.aca_pct), 1)))
    return pd.DataFrame(rows, columns=TABLE3_VS_COLUMNS)


def make_table3(paths: Sequence[str | Path], *, models: Mapping[str, Mapping], datasets: Mapping[str, Mapping],
                params: Mapping, published: str | Path | None, outputs: Mapping[str, str | Path]) -> pd.DataFrame:
    """The `table3_tables` rule: Table 3's layout (TSV/MD/LaTeX/HTML) and the comparison with the published Table 3."""
    results = zeroshot_results(paths)
    desc = params.get("desc_prompt_set", "ensemble")
    swap = params.get("dlilp_head_swap", True)
    scored = ("the external test partition" if params.get("test_set", "test") == "test" else
              "the training partition (as zeroshot.txt's DLILP lines)")
    notes = [f"Zero-shot ACA (balanced accuracy) x 100 on {scored}, fold 0, as jusiro/DLILP@2c9d301 local_data/examples/zeroshot.txt runs it (medprobe.cxr_zeroshot). "
             f"Name: one prompt per class ('a radiology image of <class>'); Desc.: the '{desc}' prompt set.",
             "head 'label': the model's label prototypes (select_class_prototypes), which ignore the prompts: a "
             "unimodal model" + (", and DLILP under the authors' two-head swap for every experiment whose name lacks "
                                 "'new' (main_transferability.py L75-80)" if swap else
                                 "; DLILP's swap is off (transfer_zeroshot.dlilp_head_swap: false)") + "."]
    table = table3(results, models, datasets, prompt_sets=params["prompt_sets"], desc_prompt_set=desc)
    files.write_tsv(outputs["table"], table)
    title = "Table 3 layout: zero-shot classification (ACA x 100)"
    files.write_text(outputs["markdown"], markdown_table(table, title, notes))
    files.write_text(outputs["latex"], to_latex(table, notes))
    write_html(outputs["html"], table, title, " ".join(notes))

    frame = pd.read_csv(published, sep="\t", dtype=str, keep_default_na=False) if published else pd.DataFrame(
        columns=["model_id", "dataset_id", "prompt_set", "aca_pct"])
    compared = table3_vs_published(results, frame, models, datasets, desc_prompt_set=desc)
    files.write_tsv(outputs["vs_published"], compared)
    vs_title = "Reproduced vs published Table 3 (ACA x 100; delta = ours - published, percentage points)"
    unmatched = sorted({row.model for row in frame.itertuples() if not row.model_id})
    vs_notes = [f"Published 'descriptions' is compared with our '{desc}' prompt set (resources/dlilp/README.md: the "
                f"authors' default, an inference). No checkpoint is public for {', '.join(unmatched)}."
                if unmatched else f"Published 'descriptions' is compared with our '{desc}' prompt set."]
    ran = set(results["model"])
    for model_id in dict.fromkeys(r.model_id for r in frame.itertuples() if r.model_id and r.model_id not in ran):
        why = NOT_REPRODUCIBLE.get(model_id, "not run by this configuration (transfer_zeroshot runs the configured "
                                             "models that have a dlilp_zero_shot registry entry)")
        vs_notes.append(f"{model_id}: {why}.")
    if len(compared):
        vs_notes.append(f"Mean |delta| {compared['delta_pp'].abs().mean():.1f} pp over {len(compared)} cells.")
    files.write_text(outputs["vs_published_md"], markdown_table(compared, vs_title, vs_notes))
    write_html(outputs["vs_published_html"], compared, vs_title, " ".join(vs_notes))
    return table
