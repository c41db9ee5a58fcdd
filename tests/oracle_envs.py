"""Isolated Python environments for official code that needs other library versions than medprobe's own (the
LLaVA authors' llava-torch with the transformers it was released with; transformers 4.26.1, with which CXR-CLIP's
checkpoints were written; the chest X-ray packages medclip 0.0.3 and hi-ml-multimodal 0.2.2).

Each environment is a virtual environment that the tests create themselves from PyPI, cached by its requirements
under $MEDPROBE_ORACLE_ENVS (default ~/.cache/medprobe/oracle-envs) and never taken from anywhere else. Its own
packages come first on sys.path; torch (and whatever else it lacks) comes from the environment running the tests,
through a .pth file added after pip has installed the requirements, so pip never sees, and never replaces, that torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(os.environ.get("MEDPROBE_ORACLE_ENVS", Path.home() / ".cache" / "medprobe" / "oracle-envs"))

# Which official packages each environment holds comes from the model registry (`official.environment` and
# `official.packages` of its entries). Here only what the registry cannot say: the dependency pins the official
# packages need beside the host's torch, and the packages installed without their dependencies (their own pins would
# replace the host's torch: llava-torch pins torch 2.0.1).
DEPENDENCIES = {
    "llava": ["tokenizers==0.15.0", "einops==0.8.1"],  # transformers 4.36.2's tokenizers; s2wrapper's einops
    "transformers426": [],
    "conch": [],
    # what importing medclip (its dataset module: nltk) and health_multimodal.image (its data.io: SimpleITK,
    # scikit-image) needs beyond the host's torch, torchvision, timm, pandas, scikit-learn, pydicom
    "cxr_vlm": ["nltk==3.10.4", "scikit-image==0.26.0", "SimpleITK==2.5.7"],
}
# medclip and hi-ml-multimodal list torch and torchvision (unpinned) among their dependencies: pip would install
# its own torch into the environment, ahead of the host's
NO_DEPS = ("llava-torch", "scaling-on-scales", "conch-fork", "medclip", "hi-ml-multimodal")


def requirements(name: str) -> tuple[list[str], list[str]]:
    """(resolved with their dependencies, installed without) for environment `name`, from the model registry."""
    import yaml

    registry = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "models.yaml").read_text())
    packages = sorted({p for spec in registry.values() if (spec.get("official") or {}).get("environment") == name
                       for p in spec["official"].get("packages", [])})
    if not packages:
        raise KeyError(f"no registry entry names the oracle environment {name!r}")
    with_deps = [p for p in packages if not p.startswith(NO_DEPS)] + DEPENDENCIES[name]
    return with_deps, [p for p in packages if p.startswith(NO_DEPS)]


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def oracle_python(name: str) -> Path:
    """The python of environment `name`, created on first use (a few seconds to a minute, from PyPI)."""
    with_deps, no_deps = requirements(name)
    host = sysconfig.get_paths()["purelib"]
    key = hashlib.sha256(json.dumps([sys.version, with_deps, no_deps, host]).encode()).hexdigest()[:12]
    folder = ROOT / f"{name}-{key}"
    python = folder / "bin" / "python"
    if (folder / "ready").is_file():
        return python
    shutil.rmtree(folder, ignore_errors=True)  # a build that did not finish
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if with_deps:
        subprocess.run(pip + with_deps, check=True)
    if no_deps:
        subprocess.run(pip + ["--no-deps"] + no_deps, check=True)
    # after pip: the host's packages (torch) are found last, behind the environment's own
    (_site_packages(python) / "zz_medprobe_host.pth").write_text(host + "\n")
    (folder / "ready").touch()
    return python
