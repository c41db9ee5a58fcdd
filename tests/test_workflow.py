"""The workflow end to end: lint, dry runs of every shipped config, and a real run on a tiny config."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, job_counts, run_snakemake, tiny_config
from medprobe.tables import format_cell

pytestmark = pytest.mark.integration
sys.path.insert(0, str(REPO / "tools"))


def test_lint_is_clean(repo, tmp_path):
    result = run_snakemake("--lint", cwd=repo)
    assert "Congratulations" in result.stdout + result.stderr


def test_rule_files_are_snakefmt_clean(repo):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "workflow"], cwd=repo,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_paper_config_plans_the_full_16_x_8_dag(repo, tmp_path):
    result = run_snakemake("-n", "--configfile", str(repo / "config" / "config.yaml"), cwd=tmp_path)
    counts = job_counts(result.stdout)
    assert counts == {"download": 8, "manifest": 8, "split": 8, "fetch_weights": 16, "embed": 128, "probe": 128,
                      "umap_sweep": 128, "umap_figure": 128, "umap_summary": 8, "paper_table": 1, "fewshot": 128,
                      "fewshot_table": 1, "zeroshot": 56, "zeroshot_table": 1, "paired_tests": 8, "runtimes": 1,
                      "embed_overlay": 128, "bias_audit": 128, "umap_figure_by": 128, "bias_table": 1,
                      "bias_figure": 8, "ocr": 8, "typographic_attack": 56, "thumbnails": 8, "explorer_page": 8,
                      "all": 1}


def test_dlilp_config_plans_the_whole_study(repo, tmp_path):
    """The chest X-ray study: 13 encoders x 7 datasets (Table 4), and Table 3's zero-shot on COVID 2- and 4-class for
    the 8 encoders with a dlilp_zero_shot entry, planned with no data and no weights present."""
    result = run_snakemake("-n", "--configfile", str(repo / "config" / "dlilp.yaml"), cwd=tmp_path)
    counts = job_counts(result.stdout)
    assert counts["split"] == 7 and counts["fetch_weights"] == 13
    assert counts["download"] == counts["manifest"] == 8  # + covid_2class, embedded only for Table 3
    assert counts["transfer"] == counts["probe"] == counts["umap_sweep"] == 13 * 7
    assert counts["embed"] == 13 * 7 + 8 and counts["dlilp_zeroshot"] == 8 * 2 and counts["table3_tables"] == 1
    assert counts["transfer_tables"] == 1 and counts["paired_tests"] == 7 and counts["explorer_page"] == 7
    assert counts["bias_audit"] == counts["embed_overlay"] == 13 * 7
    assert "paper_table" not in counts and "fewshot" not in counts  # the other study's table is off here


def test_demo_config_plans_its_dag(repo, tmp_path):
    counts = job_counts(run_snakemake("-n", cwd=tmp_path).stdout)
    assert counts["embed"] == 4 and counts["manifest"] == 2 and counts["umap_figure"] == 4
    assert counts["embed_overlay"] == 4 and counts["bias_audit"] == 4 and counts["bias_figure"] == 2
    assert counts["thumbnails"] == 2 and counts["explorer_page"] == 2  # once per dataset, not per model


def test_unknown_model_stops_before_any_job(repo, tmp_path):
    result = run_snakemake("-n", "--config", "models=[pixels,resnet5O]", cwd=tmp_path, check=False)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "unknown model id(s): 'resnet5O'" in text and "Valid model ids:" in text and "resnet50_random" in text


def test_one_target_runs_only_what_it_needs(repo, tmp_path):
    config = tiny_config(tmp_path, repo)
    result = run_snakemake("results/probe/tiny/pixels.tsv", "-n", "--configfile", str(config), cwd=tmp_path)
    assert job_counts(result.stdout) == {"download": 1, "manifest": 1, "split": 1, "fetch_weights": 1, "embed": 1,
                                         "probe": 1}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, repo):
    """One full run of the tiny config, shared by the tests that read its outputs."""
    base = tmp_path_factory.mktemp("tiny")
    config = tiny_config(base, repo)
    work = base / "run1"
    work.mkdir()
    run_snakemake("--cores", "2", "--configfile", str(config), cwd=work)
    return work, config


def test_tiny_run_end_to_end(tiny_run, tmp_path):
    work, config = tiny_run

    manifest = pd.read_csv(work / "results/manifests/tiny.tsv", sep="\t")
    assert len(manifest) == 30
    figure = work / "results/figures/umap/tiny/pixels.png"
    assert figure.stat().st_size > 10_000
    assert (work / "results/figures/umap_summary/tiny.png").stat().st_size > 10_000
    metrics = pd.read_csv(work / "results/umap/tiny/pixels/metrics.tsv", sep="\t")
    assert len(metrics) == 5 and metrics.trustworthiness.dropna().between(0, 1).all()
    assert json.loads((work / "results/datasets/tiny.json").read_text())["status"] == "present"
    for stage in ("download/tiny", "manifest/tiny", "split/tiny", "embed/tiny/pixels", "umap_sweep/tiny/pixels",
                  "probe/tiny/pixels"):
        assert (work / "logs" / f"{stage}.log").exists() and (work / "benchmarks" / f"{stage}.tsv").exists()

    # the table's numbers are the probe file's, aggregated
    probe = pd.read_csv(work / "results/probe/tiny/pixels.tsv", sep="\t")
    table = pd.read_csv(work / "results/tables/paper_table.tsv", sep="\t")
    row = table[table.model == "Pixels (32x32 gray)"].iloc[0]
    for column, metric in (("Tiny accuracy", "accuracy"), ("Tiny F1", "f1_macro")):
        values = probe[(probe["eval"] == "holdout") & (probe.metric == metric)].sort_values("fold").value
        assert len(values) == 5
        assert row[column] == format_cell(values.mean(), np.std(values.to_numpy()))
    assert "Tiny accuracy" in (work / "results/tables/paper_table.md").read_text()
    assert "\\toprule" in (work / "results/tables/paper_table.tex").read_text()
    paired = pd.read_csv(work / "results/tables/paired/tiny.tsv", sep="\t")
    assert paired[["model_a", "model_b"]].values.tolist() == [["pixels", "clip_vit_b16_random"]]
    assert 0 < paired.p_value.iloc[0] <= 1
    fewshot = pd.read_csv(work / "results/tables/fewshot.tsv", sep="\t")
    assert set(fewshot.shots) == {1, 2, 4, 8}  # 8 training images per class: 16 shots are skipped
    by_k = pd.read_csv(work / "results/tables/fewshot_shots.tsv", sep="\t")  # models x K, one row per model
    assert by_k.columns.tolist() == ["dataset", "model", "1-shot", "2-shot", "4-shot", "8-shot"]
    assert len(by_k) == 2 and by_k["8-shot"].str.contains(" ± ").all()
    assert (work / "results/figures/fewshot_shots.png").read_bytes()[:4] == b"\x89PNG"
    transfer = pd.read_csv(work / "results/transfer/tiny/pixels.tsv", sep="\t")
    aca = transfer[transfer.metric == "aca"]
    assert sorted(aca.fold.unique()) == [0, 1, 2] and set(aca.shots) == {1, 4}
    assert (aca.n_test == 3 * 2).all()  # int(20 % of 10) test images per class and fold
    table4 = pd.read_csv(work / "results/tables/table4.tsv", sep="\t")
    assert table4.columns.tolist() == ["model", "pretraining_data", "Tiny", "Avg."]
    assert (work / "results/figures/transfer_shots.png").read_bytes()[:4] == b"\x89PNG"
    zeroshot = pd.read_csv(work / "results/zeroshot/tiny/clip_vit_b16_random.tsv", sep="\t")
    assert set(zeroshot.prompt_set) == {"names"} and zeroshot.value.between(0, 1).all()

    # a second clean run gives a byte-identical table
    work2 = tmp_path / "run2"
    work2.mkdir()
    run_snakemake("paper_table", "--cores", "2", "--configfile", str(config), cwd=work2)
    assert (work / "results/tables/paper_table.tsv").read_bytes() == \
        (work2 / "results/tables/paper_table.tsv").read_bytes()
    assert not (work2 / "results/umap").exists()  # the table alone needs no UMAP


def test_missing_login_only_dataset_stops_with_the_command(repo, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"models": ["pixels"], "datasets": ["sarscov2ct"],
                                      "data_root": str(tmp_path / "data")}))
    result = run_snakemake("results/manifests/sarscov2ct.tsv", "--cores", "1", "--configfile",
                           str(repo / "config" / "config.yaml"), str(config), cwd=tmp_path, check=False)
    assert result.returncode != 0
    log = (tmp_path / "logs" / "download" / "sarscov2ct.log").read_text()
    assert "kaggle datasets download -d plameneduardo/sarscov2-ctscan-dataset" in log
    assert str(tmp_path / "data" / "sarscov2ct") in log


def needs_browser():
    browser = shutil.which("chromium") and Path("/usr/bin/chromedriver").exists() and \
        importlib.util.find_spec("selenium") is not None
    if not browser:
        message = "the browser checks need chromium, chromium-driver (apt) and selenium (pip)"
        if os.environ.get("MEDPROBE_TEST_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def test_report_zip_has_every_figure_table_and_explorer(tiny_run, tmp_path):
    """`snakemake --report report.zip` (the catalog's form; a report holding the explorer's folders must be a zip):
    the methods text, every figure, table and explorer page, each shown in headless Chromium."""
    import zipfile

    work, config = tiny_run
    runtimes = pd.read_csv(work / "results/tables/runtimes.tsv", sep="\t")
    embed = runtimes.set_index("rule").loc["embed"]
    assert embed.jobs == 2 and embed.total_s > 0 and embed.max_rss_mb > 0
    assert {"manifest", "split", "probe", "umap_sweep", "paper_table", "thumbnails", "explorer_page"} <= set(
        runtimes.rule)

    run_snakemake("--report", "report.zip", "--configfile", str(config), cwd=work)
    with zipfile.ZipFile(work / "report.zip") as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "unzipped")
    (report,) = (tmp_path / "unzipped").glob("*/report.html")
    page = report.read_text()
    assert "LinearSVC" in page  # workflow.rst, the methods paragraph, rendered with the run's config
    figures = ["results/figures/umap/tiny/pixels.png", "results/figures/umap/tiny/clip_vit_b16_random.png",
               "results/figures/umap_summary/tiny.png", "results/figures/runtimes.png",
               "results/figures/umap_by/size/tiny/pixels.png",
               "results/figures/umap_by/size/tiny/clip_vit_b16_random.png",
               "results/figures/bias/tiny.png", "results/figures/bias/tiny.examples.png",
               "results/figures/fewshot_shots.png", "results/figures/transfer_shots.png"]
    tables = ["results/tables/paper_table.html", "results/tables/vs_published.html", "results/tables/runtimes.html",
              "results/tables/paired/tiny.html", "results/tables/fewshot.html", "results/tables/zeroshot.html",
              "results/tables/bias.html", "results/tables/fewshot_shots.html", "results/tables/table4.html",
              "results/tables/transfer_shots.html"]
    for path in figures + tables:
        assert f'"{path}"' in page, path
    # the explorer, its layouts and thumbnails beside its page, as in results/explorer/tiny/
    explorer_pages = [n for n in names if n.endswith("/index.html")]
    assert len(explorer_pages) == 1
    base = explorer_pages[0][:-len("index.html")]
    assert {base + "layouts/m00.js", base + "layouts/m01.js"} <= set(names)
    assert sum(n.startswith(base + "thumbs/") for n in names) == 30

    # a single-file report cannot hold a folder: Snakemake says to make a zip
    refused = run_snakemake("--report", "report.html", "--configfile", str(config), cwd=work, check=False)
    assert refused.returncode != 0 and "report.zip" in refused.stdout + refused.stderr

    # and it renders: headless Chromium shows each figure with pixels drawn, each table with rows, the explorer drawn
    needs_browser()
    from explorer_check import check_explorer
    from report_screenshot import check_report

    rows = {row["result"]: row for row in check_report(report, tmp_path / "shots", "LinearSVC")}
    assert all(row["ok"] for row in rows.values()), [row for row in rows.values() if not row["ok"]]
    assert {path for path, row in rows.items() if row["kind"] == "figure"} == set(figures)
    assert {path for path, row in rows.items() if row["kind"] == "table"} >= set(tables)
    assert len([row for row in rows.values() if row["kind"] == "explorer"]) == 1
    assert len(list((tmp_path / "shots").glob("*.png"))) == len(rows)
    # the explorer page as the report stores it works like the one on disk
    assert check_explorer(tmp_path / "unzipped" / explorer_pages[0])["ok"]


def test_explorer_page_from_disk_follows_a_reader(tiny_run, tmp_path):
    """Open results/explorer/tiny/index.html from disk: a second model and setting, a hovered point's thumbnail and
    file name, a selected region's files read back, the pin and the selection kept; no console error."""
    needs_browser()
    from explorer_check import check_explorer

    work, _ = tiny_run
    result = check_explorer(work / "results/explorer/tiny/index.html", tmp_path / "shots")
    assert result["ok"] and not result["console_errors"]
    assert result["state"]["model"] == "m01" and result["selection"]["csv_rows"] == result["selection"]["selected"]
    assert result["hover"]["expected_file"] in result["hover"]["tooltip"]


def test_an_image_replaced_under_the_same_name_reruns_the_manifest(repo, tmp_path):
    from conftest import save_image

    config = tiny_config(tmp_path, repo)
    target = "results/splits/tiny.tsv"
    run_snakemake(target, "--cores", "1", "--configfile", str(config), cwd=tmp_path)
    first = (tmp_path / "results/manifests/tiny.tsv").read_text()
    assert "Nothing to be done" in run_snakemake(target, "-n", "--configfile", str(config), cwd=tmp_path).stdout
    image = next((tmp_path / "data" / "no_tumor").iterdir())
    save_image(image, seed=1234, size=(50, 50), fmt="JPEG" if image.suffix.lower() in (".jpg", ".jpeg") else None)
    planned = run_snakemake(target, "-n", "--configfile", str(config), cwd=tmp_path)
    assert job_counts(planned.stdout) == {"manifest": 1, "split": 1}
    run_snakemake(target, "--cores", "1", "--configfile", str(config), cwd=tmp_path)
    second = (tmp_path / "results/manifests/tiny.tsv").read_text()
    changed = [line for line in second.splitlines() if line not in first.splitlines()]
    assert len(changed) == 1 and changed[0].startswith(f"no_tumor/{image.name}\t")


def test_bad_inputs_stop_the_workflow_with_the_value_and_the_fix(repo, tmp_path):
    config = tiny_config(tmp_path, repo)
    bad_grid = tmp_path / "bad_grid.yaml"
    bad_grid.write_text("umap:\n  min_dist: [0.1, 4]\n")
    result = run_snakemake("-n", "--configfile", str(config), str(bad_grid), cwd=tmp_path, check=False)
    assert result.returncode != 0 and "Job stats" not in result.stdout
    assert f"umap/min_dist: min_dist must be less than or equal to spread (1.0); use values in [0, 1.0]; umap-learn " \
           f"refuses it (set in {bad_grid})" in result.stdout + result.stderr

    import shutil

    shutil.rmtree(tmp_path / "data" / "pituitary_tumor")   # a registered class without images
    (tmp_path / "data" / "pituitary_tumor").mkdir()
    result = run_snakemake("results/splits/tiny.tsv", "--cores", "1", "--configfile", str(config), cwd=tmp_path,
                           check=False)
    assert result.returncode != 0
    log = (tmp_path / "logs" / "manifest" / "tiny.log").read_text()
    assert "class(es) without a single readable image: pituitary_tumor" in log and "`classes:`" in log
    assert not (tmp_path / "results/manifests/tiny.tsv").exists()
    assert not (tmp_path / "results/manifests/tiny.issues.tsv").exists()
