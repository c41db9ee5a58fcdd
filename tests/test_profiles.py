"""The profiles: what SLURM is asked for per rule, and which rules stay on the submit host."""

from __future__ import annotations

import yaml

from conftest import REPO


def test_every_compute_rule_states_memory_and_runtime(code_rules):
    for name, rule in code_rules.items():
        assert {"mem_mb", "runtime"} <= set(rule["resources"]), f"rule {name} leaves mem_mb/runtime to the defaults"
    assert "gpu" in code_rules["embed"]["resources"]


def test_network_rules_run_on_the_submit_host_and_compute_rules_do_not(code_rules):
    local = {name for name, rule in code_rules.items() if rule["local"]}
    assert {"download", "fetch_weights"} <= local  # compute nodes need no internet
    assert not local & {"manifest", "split", "embed", "umap_sweep", "umap_figure", "probe", "fewshot", "zeroshot"}


def test_every_rule_states_its_threads():
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in path.read_text().split("\nrule ")[1:]:
            name = block.split(":", 1)[0]
            assert "\n    threads:" in block, f"{path.name}: rule {name} does not state threads"


def test_slurm_profile():
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"  # sacct hangs without accounting storage
    defaults = dict(item.split("=", 1) for item in profile["default-resources"])
    assert int(defaults["mem_mb"]) > 0 and int(defaults["runtime"]) > 0
    workstation = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert "gpu=1" in workstation["resources"]
