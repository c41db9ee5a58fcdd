"""The UMAP grid's settings, checked as umap-learn checks them (importable without umap-learn, before any job)."""

from __future__ import annotations

from typing import Sequence

SPREAD = 1.0  # UMAP's default spread, as in the paper; every layout's a, b come from (SPREAD, min_dist)


def settings_problems(n_neighbors: Sequence, min_dist: Sequence, *, spread: float = SPREAD) -> list[str]:
    """What umap-learn's UMAP._validate_parameters would refuse in the grid (same conditions, same words), so a bad
    value stops the workflow before any job instead of producing degenerate layouts (min_dist 4: a ~ 4e-10)."""
    problems = []
    for k in n_neighbors:
        if k < 2:
            problems.append(f"umap.n_neighbors {k}: n_neighbors must be greater than 1")
    for d in min_dist:
        if d > spread:
            problems.append(f"umap.min_dist {d}: min_dist must be less than or equal to spread ({spread}); "
                            f"use values in [0, {spread}]")
        if d < 0.0:
            problems.append(f"umap.min_dist {d}: min_dist cannot be negative")
    return problems
