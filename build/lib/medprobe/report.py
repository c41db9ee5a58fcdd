"""What `snakemake --report` shows beside the figures: tables as self-contained HTML pages (the report offers a TSV
only as a download), and the per-rule runtime and memory summary read from the rules' benchmark files."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Iterable

import pandas as pd

from .files import atomic_path

log = logging.getLogger(__name__)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.2em; }
p.note { color: #555; max-width: 60em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; text-align: left; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
tr:hover td { background: #fafafa; }
"""


def html_table(frame: pd.DataFrame, title: str, note: str | None = None) -> str:
    """One table as a standalone HTML page (no external resources: it is embedded in report.html as a data URI)."""
    body = frame.to_html(index=False, na_rep="", border=0, escape=True, float_format=lambda v: f"{v:.4g}")
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    if frame.empty:
        note_html += '<p class="note">No rows.</p>'
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{note_html}{body}</body></html>\n")


def tsv_to_html(tsv: str | Path, out_html: str | Path, title: str, note: str | None = None) -> None:
    frame = pd.read_csv(tsv, sep="\t", keep_default_na=False, na_values=[""])
    with atomic_path(out_html) as tmp:
        Path(tmp).write_text(html_table(frame, title, note), encoding="utf-8")


def read_benchmarks(root: str | Path) -> pd.DataFrame:
    """Every snakemake benchmark file under `root` (`{root}/{rule}/{wildcards...}.tsv`), one row per job."""
    rows = []
    root = Path(root)
    for path in sorted(root.glob("*/**/*.tsv")):
        relative = path.relative_to(root)
        try:
            frame = pd.read_csv(path, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            log.warning("skipping %s: not a benchmark file (%s)", path, error)
            continue
        if "s" not in frame.columns or frame.empty:
            log.warning("skipping %s: no 's' column (not a snakemake benchmark file)", path)
            continue
        last = frame.iloc[-1]  # with `repeat(...)` a benchmark has several rows; the last is the latest
        rows.append({"rule": relative.parts[0], "job": str(relative.with_suffix(""))[len(relative.parts[0]) + 1:],
                     "seconds": float(last["s"]),
                     "max_rss_mb": float(last.get("max_rss", float("nan"))),
                     "cpu_seconds": float(last.get("cpu_time", float("nan")))})
    return pd.DataFrame(rows, columns=["rule", "job", "seconds", "max_rss_mb", "cpu_seconds"])


def runtime_summary(jobs: pd.DataFrame, rule_order: Iterable[str] | None = None) -> pd.DataFrame:
    """Per rule: jobs, total / median / max wall seconds, total CPU seconds, the largest peak RSS, the slowest job."""
    if jobs.empty:
        return pd.DataFrame(columns=["rule", "jobs", "total_s", "median_s", "max_s", "cpu_s", "max_rss_mb",
                                     "slowest_job"])
    grouped = jobs.groupby("rule", sort=False)
    summary = pd.DataFrame({
        "jobs": grouped.size(),
        "total_s": grouped.seconds.sum(),
        "median_s": grouped.seconds.median(),
        "max_s": grouped.seconds.max(),
        "cpu_s": grouped.cpu_seconds.sum(min_count=1),
        "max_rss_mb": grouped.max_rss_mb.max(),
        "slowest_job": grouped.apply(lambda g: g.loc[g.seconds.idxmax(), "job"], include_groups=False),
    }).reset_index()
    if rule_order is not None:
        order = {rule: i for i, rule in enumerate(rule_order)}
        summary = summary.sort_values("rule", key=lambda s: s.map(lambda r: order.get(r, len(order))), kind="stable")
    else:
        summary = summary.sort_values("total_s", ascending=False, kind="stable")
    return summary.round({"total_s": 1, "median_s": 2, "max_s": 2, "cpu_s": 1, "max_rss_mb": 0}).reset_index(drop=True)


def make_runtimes(benchmark_root: str | Path, out_tsv: str | Path, out_html: str | Path,
                  rule_order: Iterable[str] | None = None) -> pd.DataFrame:
    """The runtime table (tsv and html); its figure is `medprobe.plots.runtime_figure` (this module stays free of
    matplotlib, since every table rule imports it)."""
    jobs = read_benchmarks(benchmark_root)
    summary = runtime_summary(jobs, rule_order)
    log.info("%d benchmark files of %d rules under %s", len(jobs), len(summary), benchmark_root)
    with atomic_path(out_tsv) as tmp:
        summary.to_csv(tmp, sep="\t", index=False)
    tsv_to_html(out_tsv, out_html, "Runtime per rule",
                note="Wall and CPU seconds and peak resident memory from each job's snakemake benchmark file "
                     f"({benchmark_root}/<rule>/...tsv), summed or maximised over the rule's jobs.")
    return summary
