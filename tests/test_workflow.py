"""The workflow end to end: lint, dry runs of every shipped config, and a real run on a tiny config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import job_counts, run_snakemake, tiny_config
from medprobe.tables import format_cell

pytestmark = pytest.mark.integration


def test_lint_is_clean(repo, tmp_path):
    result = run_snakemake("--lint", cwd=repo)
    assert "Congratulations" in result.stdout + result.stderr


def test_paper_config_plans_the_full_16_x_8_dag(repo, tmp_path):
    result = run_snakemake("-n", "--configfile", str(repo / "config" / "config.yaml"), cwd=tmp_path)
    counts = job_counts(result.stdout)
    assert counts == {"download": 8, "manifest": 8, "split": 8, "fetch_weights": 16, "embed": 128, "probe": 128,
                      "umap_sweep": 128, "umap_figure": 128, "umap_summary": 8, "paper_table": 1, "fewshot": 128,
                      "fewshot_table": 1, "zeroshot": 32, "zeroshot_table": 1, "paired_tests": 8, "all": 1}


def test_demo_config_plans_its_dag(repo, tmp_path):
    counts = job_counts(run_snakemake("-n", cwd=tmp_path).stdout)
    assert counts["embed"] == 4 and counts["manifest"] == 2 and counts["umap_figure"] == 4


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


def test_tiny_run_end_to_end(repo, tmp_path):
    config = tiny_config(tmp_path, repo)
    work = tmp_path / "run1"
    work.mkdir()
    run_snakemake("--cores", "2", "--configfile", str(config), cwd=work)

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
