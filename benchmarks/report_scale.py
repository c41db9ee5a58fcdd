"""The Snakemake report at the paper's scale: 16 models x 8 datasets of UMAP grids (synthetic layouts of each dataset's
real size), as a single HTML file and as report.zip, with the grids saved true-colour (before) and as indexed PNGs
(medprobe.plots.save_indexed_png, now). Prints each report's size and its open time in headless Chromium (until the
report app has listed its results), and a grid's size.

    python benchmarks/report_scale.py --out /tmp/report_scale

One grid is drawn per dataset (at its N) and copied for its 16 models: the report only embeds the files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tools"))

SNAKEFILE = textwrap.dedent('''
    DATASETS = {datasets}
    MODELS = [f"model_{{i:02d}}" for i in range(16)]


    rule all:
        input:
            expand("results/figures/umap/{{dataset}}/{{model}}.png", dataset=DATASETS, model=MODELS),


    rule grid:
        input:
            "grids/{{dataset}}.png",
        output:
            report(
                "results/figures/umap/{{dataset}}/{{model}}.png",
                category="UMAP layouts",
                subcategory="{{dataset}}",
                labels={{"dataset": "{{dataset}}", "model": "{{model}}"}},
            ),
        localrule: True
        shell:
            "cp {{input}} {{output}}"
''')


def draw_grids(out: Path, sizes: dict[str, int], indexed: bool) -> dict[str, int]:
    import matplotlib

    matplotlib.use("Agg")
    from medprobe import plots
    from medprobe.umap_sweep import Sweep

    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    original = plots.save_indexed_png
    if not indexed:  # the true-colour PNG matplotlib writes by itself (before)
        def true_colour(fig, out_png, *, dpi=100, colours=256):
            fig.savefig(out_png, dpi=dpi, format="png", metadata={"Software": None})
            return Path(out_png)
        plots.save_indexed_png = true_colour
    try:
        for dataset, n in sizes.items():
            labels = rng.integers(0, 4, n)
            centres = rng.normal(size=(4, 2)) * 4
            layouts = (centres[labels][None, None] + rng.normal(size=(10, 5, n, 2))).astype(np.float32)
            steps = [3, 5, 10, 15, 25, 50, 100, 200, 500, 1000]
            sweep = Sweep(layouts=layouts, n_neighbors=steps, n_neighbors_effective=[min(k, n - 1) for k in steps],
                          min_dist=[0.1, 0.25, 0.5, 0.75, 1.0], labels=labels, sample_id=np.arange(n).astype(str),
                          attrs={"class_names": ["a", "b", "c", "d"], "metric": "cosine", "dataset_id": dataset})
            plots.plot_umap_grid(sweep, out / f"{dataset}.png")
            written[dataset] = (out / f"{dataset}.png").stat().st_size
    finally:
        plots.save_indexed_png = original
    return written


def open_time(page: Path) -> float:
    from report_screenshot import driver_for, wait_for

    driver = driver_for(None, None, 1400, 1000)
    try:
        started = time.perf_counter()
        driver.get(page.resolve().as_uri())
        wait_for(driver, "return typeof app !== 'undefined' && typeof results !== 'undefined' && "
                         "Object.keys(results).length > 0", timeout=600, what="the report app")
        return time.perf_counter() - started
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/report_scale"))
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    registry = yaml.safe_load((REPO / "config" / "datasets.yaml").read_text())
    sizes = {d: int(registry[d]["expected"]["n"]) for d in config["datasets"]}
    if args.out.exists():
        shutil.rmtree(args.out)
    figures = {"datasets": sizes}
    for mode in ("true_colour", "indexed"):
        work = args.out / mode
        grids = draw_grids(work / "grids", sizes, indexed=mode == "indexed")
        figures[f"{mode}_grid_kb"] = {d: round(b / 1024) for d, b in grids.items()}
        (work / "Snakefile").write_text(SNAKEFILE.format(datasets=json.dumps(list(sizes))))
        run = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(work), "--snakefile",
               str(work / "Snakefile")]
        subprocess.run(run, check=True, capture_output=True)
        for kind in ("report.html", "report.zip"):
            started = time.perf_counter()
            subprocess.run(run + ["--report", kind], check=True, capture_output=True)
            made = time.perf_counter() - started
            size = (work / kind).stat().st_size / 2 ** 20
            if kind == "report.zip":
                with zipfile.ZipFile(work / kind) as archive:
                    archive.extractall(work / "unzipped")
                page = next((work / "unzipped").glob("*/report.html"))
                html_mb = page.stat().st_size / 2 ** 20
            else:
                page, html_mb = work / kind, size
            figures[f"{mode}_{kind}"] = {"size_mb": round(size, 1), "html_page_mb": round(html_mb, 2),
                                         "make_s": round(made, 1), "open_s": round(open_time(page), 2)}
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
