#!/usr/bin/env bash
# Refresh requirements/lock.txt: every package medprobe, its tests and the SLURM plugin need, pinned with hashes
# (pip-tools), for CPython 3.11 on Linux x86_64. Then run the tests (tests/test_deploy.py checks that the conda envs
# still agree with the lock on torch, transformers, open_clip, timm, umap-learn and numba).
#   tools/lock.sh                 # after changing pyproject.toml's dependencies
#   tools/lock.sh --upgrade       # newest releases within pyproject.toml's ranges
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TMPDIR:-/tmp}/medprobe-pip-tools"
[ -x "$venv/bin/pip-compile" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "pip-tools==7.7.0"; }
"$venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
    --no-emit-find-links --extra test --extra slurm --constraint requirements/constraints.txt \
    --output-file requirements/lock.txt "$@" pyproject.toml
