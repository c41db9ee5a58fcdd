"""The report's extras: per-rule runtimes from benchmark files, and tables as standalone HTML."""

from __future__ import annotations

import pandas as pd
import pytest

from medprobe.plots import runtime_figure
from medprobe.report import html_table, make_runtimes, read_benchmarks, runtime_summary

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(root, relative, *rows):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{s}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n" for s, rss, cpu in rows))


@pytest.fixture
def benchmarks(tmp_path):
    root = tmp_path / "benchmarks"
    bench(root, "embed/brainmr/uni.tsv", (120.0, 5000.0, 100.0))
    bench(root, "embed/brainmr/pixels.tsv", (6.0, 800.0, 5.0))
    bench(root, "embed/busi/uni.tsv", (40.0, 4000.0, 30.0))
    bench(root, "probe/brainmr/uni.tsv", (9.0, 700.0, 15.0), (3.0, 650.0, 5.0))  # repeat(): the last row counts
    bench(root, "paper_table/all.tsv", (1.5, 170.0, 1.0))
    (root / "notes").mkdir()
    (root / "notes" / "readme.tsv").write_text("a\tb\n1\t2\n")  # not a benchmark file: skipped
    return root


def test_benchmarks_are_read_one_row_per_job(benchmarks):
    jobs = read_benchmarks(benchmarks)
    assert sorted(jobs.job[jobs.rule == "embed"]) == ["brainmr/pixels", "brainmr/uni", "busi/uni"]
    probe = jobs[jobs.rule == "probe"].iloc[0]
    assert probe.seconds == 3.0 and probe.max_rss_mb == 650.0
    assert "notes" not in set(jobs.rule)


def test_runtime_summary_totals_maxima_and_the_slowest_job(benchmarks):
    summary = runtime_summary(read_benchmarks(benchmarks), rule_order=["embed", "probe", "paper_table"])
    assert summary.rule.tolist() == ["embed", "probe", "paper_table"]
    embed = summary.iloc[0]
    assert embed.jobs == 3 and embed.total_s == 166.0 and embed.median_s == 40.0 and embed.max_s == 120.0
    assert embed.cpu_s == 135.0 and embed.max_rss_mb == 5000.0 and embed.slowest_job == "brainmr/uni"


def test_make_runtimes_writes_table_page_and_figure(benchmarks, tmp_path):
    out = tmp_path / "out"
    summary = make_runtimes(benchmarks, out / "runtimes.tsv", out / "runtimes.html")
    runtime_figure(summary, out / "runtimes.png")
    table = pd.read_csv(out / "runtimes.tsv", sep="\t")
    assert table.set_index("rule").total_s.to_dict() == {"embed": 166.0, "probe": 3.0, "paper_table": 1.5}
    assert (out / "runtimes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "runtimes.html").read_text().count("<tr") == 4


def test_html_table_is_standalone_and_escapes():
    page = html_table(pd.DataFrame({"model": ["<b>x</b>"], "acc": ["91 ± 0.2"]}), "T & U", note="a < b")
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "T &amp; U" in page and "a &lt; b" in page and "91 ± 0.2" in page
    assert "http" not in page and "<script" not in page  # nothing loaded from outside the report
    assert "No rows." in html_table(pd.DataFrame({"model": []}), "empty")
