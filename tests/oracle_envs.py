"""Isolated Python environments for official code that needs other library versions than medprobe's own (the
LLaVA authors' llava-torch with the transformers it was released with; transformers 4.26.1, with which CXR-CLIP's
checkpoints were written).

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

# name -> (requirements resolved with their dependencies, packages installed without theirs)
ENVS = {
    # the LLaVA authors' package, with the transformers and tokenizers it pins (its torch pin is not installed)
    # s2wrapper (bfshi/scaling_on_scales) ships on PyPI as scaling-on-scales, its code identical to upstream HEAD
    "llava": (["transformers==4.36.2", "tokenizers==0.15.0", "einops==0.8.1"],
              ["llava-torch==1.2.2.post1", "scaling-on-scales==0.1.0"]),
    # CONCH's code: PyPI conch-fork 0.1.0, whose conch/ is identical to mahmoodlab/CONCH at 141cc09c (and every commit
    # since 3a919e39); its dependencies (timm, transformers, torch) come from the host
    "conch": ([], ["conch-fork==0.1.0"]),
    # the library version CXR-CLIP's checkpoints were written with, and omegaconf for the config they pickle
    "transformers426": (["transformers==4.26.1", "omegaconf==2.3.0"], []),
}


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def oracle_python(name: str) -> Path:
    """The python of environment `name`, created on first use (a few seconds to a minute, from PyPI)."""
    requirements, no_deps = ENVS[name]
    host = sysconfig.get_paths()["purelib"]
    key = hashlib.sha256(json.dumps([sys.version, requirements, no_deps, host]).encode()).hexdigest()[:12]
    folder = ROOT / f"{name}-{key}"
    python = folder / "bin" / "python"
    if (folder / "ready").is_file():
        return python
    shutil.rmtree(folder, ignore_errors=True)  # a build that did not finish
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if requirements:
        subprocess.run(pip + requirements, check=True)
    if no_deps:
        subprocess.run(pip + ["--no-deps"] + no_deps, check=True)
    # after pip: the host's packages (torch) are found last, behind the environment's own
    (_site_packages(python) / "zz_medprobe_host.pth").write_text(host + "\n")
    (folder / "ready").touch()
    return python
