"""The slurm profile end to end on a real single-node SLURM cluster (tools/local_slurm.sh) on localhost.

Needs root, Debian's slurm-wlm and munge, and snakemake-executor-plugin-slurm; skipped without them, unless
MEDPROBE_TEST_SLURM=1 (as `.ci/run` sets), where a missing piece is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, run_snakemake, tiny_config

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

SCRIPT = REPO / "tools" / "local_slurm.sh"


def _missing() -> list[str]:
    missing = [tool for tool in ("sbatch", "squeue", "slurmctld", "slurmd", "munged")
               if not shutil.which(tool) and not (Path("/usr/sbin") / tool).exists()]
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        missing.append("snakemake-executor-plugin-slurm")
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    missing = _missing()
    if missing:
        message = f"a local SLURM cluster needs {', '.join(missing)} (apt-get install slurm-wlm munge; " \
                  "pip install snakemake-executor-plugin-slurm; run as root)"
        if os.environ.get("MEDPROBE_TEST_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "MEDPROBE_SLURM_DIR": str(state), "MEDPROBE_SLURMCTLD_PORT": str(_free_port()),
           "MEDPROBE_SLURMD_PORT": str(_free_port()), "PATH": os.environ["PATH"] + ":/usr/sbin"}
    started = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    env["SLURM_CONF"] = str(state / "etc" / "slurm.conf")
    try:
        yield env
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)


def test_tiny_config_runs_through_slurm(tmp_path, repo, slurm_env, monkeypatch):
    for key in ("MEDPROBE_SLURM_DIR", "SLURM_CONF", "PATH"):
        monkeypatch.setenv(key, slurm_env[key])
    config = tiny_config(tmp_path, repo)
    work = tmp_path / "run"
    work.mkdir()
    # a hang (e.g. a status command that never answers) fails here instead of stalling CI
    result = run_snakemake("--profile", str(repo / "profiles" / "slurm"), "--configfile", str(config),
                           "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
                           "--slurm-keep-successful-logs",
                           cwd=work, timeout=900)
    output = result.stdout + result.stderr

    table = pd.read_csv(work / "results/tables/paper_table.tsv", sep="\t")
    assert "Tiny accuracy" in table.columns and table["Tiny accuracy"].notna().all()

    # every compute rule was submitted: snakemake reports an external SLURM job id for it ...
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", output)
    assert len(submitted) >= 10 and len(set(submitted)) == len(submitted), output[-4000:]
    slurm_logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {path.stem for path in slurm_logs} >= set(submitted)

    # ... and ran inside that job: each rule's log names its SLURM job
    def job_of(stage: str) -> str | None:
        found = re.search(r"SLURM job (\d+)", (work / "logs" / f"{stage}.log").read_text())
        return found.group(1) if found else None

    for stage in ("manifest/tiny", "split/tiny", "embed/tiny/pixels", "embed/tiny/clip_vit_b16_random",
                  "probe/tiny/pixels", "umap_sweep/tiny/pixels"):
        assert job_of(stage) in submitted, stage
    # the localrules ran on the submit host, not in a job: compute nodes need no internet
    assert job_of("download/tiny") is None and job_of("fetch_weights/clip_vit_b16_random") is None

    # the GPU rule asked for a GPU and SLURM gave it the (fake) GPU GRES; the pixels embed asked for none
    gpu_log = (work / "logs/embed/tiny/clip_vit_b16_random.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=0" in gpu_log
    assert "CUDA_VISIBLE_DEVICES" not in (work / "logs/embed/tiny/pixels.log").read_text()

    def requested(stage: str) -> str:
        shown = subprocess.run(["scontrol", "show", "job", job_of(stage)], capture_output=True, text=True, check=True)
        return shown.stdout

    assert "TresPerJob=gres:gpu:1" in requested("embed/tiny/clip_vit_b16_random")
    assert "gpu" not in requested("embed/tiny/pixels")
    probe_job = requested("probe/tiny/pixels")  # the rule's threads and mem_mb became the request
    assert "NumCPUs=2" in probe_job and re.search(r"MinMemoryNode=8000M|mem=8000M", probe_job)
