"""Shared fixtures: the repository, the shipped demo images, and small image folders made in the test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def demo_images() -> list[Path]:
    """Two real demo images: one MRI (JPEG), one ultrasound (PNG)."""
    return [sorted((DEMO / "brain_mr" / "glioma_tumor").iterdir())[0], sorted((DEMO / "busi" / "benign").iterdir())[0]]


def save_image(path: Path, seed: int = 0, size=(40, 32), mode: str = "RGB", fmt: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(array, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=fmt)
    return path


def copy_demo_subset(dest: Path, per_class: int, source: Path = DEMO / "brain_mr",
                     classes: tuple[str, ...] = ("glioma_tumor", "no_tumor", "pituitary_tumor")) -> Path:
    """A small real-image folder: the first `per_class` demo images of some classes, skipping exact duplicates."""
    import hashlib

    seen = set()
    for name in classes:
        (dest / name).mkdir(parents=True, exist_ok=True)
        taken = 0
        for path in sorted((source / name).iterdir()):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            shutil.copyfile(path, dest / name / path.name)
            taken += 1
            if taken == per_class:
                break
    return dest


def run_snakemake(*args: str, cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(cwd),
               *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake run or dry run, as {rule: count}."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Job stats"))
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def tiny_config(tmp_path, repo, models=("pixels", "clip_vit_b16_random")):
    """A minimal config on top of the demo default: 3 classes x 10 real images, pixels, a 2 x 2 UMAP grid."""
    data = copy_demo_subset(tmp_path / "data", per_class=10)
    config = {
        "models": list(models),
        "datasets": ["tiny"],
        "custom_datasets": {"tiny": {
            "name": "Tiny", "adapter": "imagefolder", "root": str(data), "licence": "MIT (BrainMR demo subset)",
            "classes": ["glioma_tumor", "no_tumor", "pituitary_tumor"],
            "expected": {"n": 30, "counts": {"glioma_tumor": 10, "no_tumor": 10, "pituitary_tumor": 10}}}},
        "umap": {"n_neighbors": [3, 50], "min_dist": [0.1, 0.5], "metric": "cosine", "seed": 42, "threads": 1},
        # the DLILP study's protocol on a dataset without fixed test partition: 20 % of each class per fold
        "protocols": {"transfer": True},
        "transfer": {"shots": [1, 4], "table_shots": 4, "folds": 3},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- the rules, as Snakemake loads them ------------------------------------------------------------------------------

# Loaded in a subprocess: the API changes the working directory and puts src/ on sys.path. The embedded default config
# (config/demo.yaml) applies; the rules and their directives do not depend on the config.
LOAD_RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings

repo, workdir = Path(sys.argv[1]), Path(sys.argv[2])
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(snakefile=repo / "workflow" / "Snakefile", workdir=workdir, resource_settings=ResourceSettings())
    rules = {}
    for rule in workflow._workflow.rules:
        base = Path(str(rule.basedir))
        rules[rule.name] = {
            "conda": str(base / rule.conda_env) if isinstance(rule.conda_env, str) else (
                rule.conda_env and repr(rule.conda_env)),
            "script": str(base / rule.script) if rule.script else None,
            "runs_code": not rule.norun,
            "resources": sorted(key for key in rule.resources if not key.startswith("_")),
            "local": rule.name in workflow._workflow._localrules or rule.norun,
        }
print("RULES " + json.dumps(rules))
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, dict]:
    workdir = tmp_path_factory.mktemp("workdir")
    result = subprocess.run([sys.executable, "-c", LOAD_RULES, str(REPO), str(workdir)], capture_output=True,
                            text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RULES ")]
    assert result.returncode == 0 and lines, f"loading the workflow failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(lines[-1][len("RULES "):])


@pytest.fixture(scope="module")
def code_rules(rules) -> dict[str, dict]:
    """The rules that run code. Exempt: target-only rules (all, embeddings, ...): no script, nothing runs."""
    return {name: rule for name, rule in rules.items() if rule["runs_code"]}
