"""Where the workflow's own files are (no third-party imports: rules of every conda env may read it)."""

from __future__ import annotations

from pathlib import Path


def workflow_root() -> Path:
    """The tree holding the workflow's files (config/, workflow/schemas/, resources/): the checkout (or Snakemake
    module copy) this package was imported from when it has them, else the copy a wheel carries in medprobe/_data/
    (setup.py puts it there, in the same layout)."""
    package = Path(__file__).resolve().parent
    checkout = package.parents[1]  # <root>/src/medprobe
    if (checkout / "workflow" / "schemas" / "config.schema.yaml").is_file():
        return checkout
    return package / "_data"


REPO_ROOT = workflow_root()
