"""The atlas explorer at the paper's largest dataset: 28,160 points per layout, 16 models x 50 (n_neighbors, min_dist)
layouts, random coordinates and predictions, thumbnails made from real images (cycled). Prints the build time, the
size on disk, and, in headless Chromium, the page load, a model switch (its layouts file loaded on demand), a setting
switch, the hover tooltip and a large selection listed and read back.

    python benchmarks/explorer_scale.py --images ../shared/data/brain_mr/Training --out /tmp/explorer_scale

Needs Chromium, chromedriver and selenium, as tools/report_screenshot.py does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tools"))

N_NEIGHBORS = [3, 5, 10, 15, 25, 50, 100, 200, 500, 1000]
MIN_DIST = [0.1, 0.25, 0.5, 0.75, 1.0]


def synthetic_dataset(out: Path, images: Path, n: int, n_models: int, n_classes: int = 4, seed: int = 0) -> dict:
    from medprobe.explorer import make_thumbnails
    from medprobe.umap_sweep import Sweep, write_layouts

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    real = sorted(p for p in images.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    # real thumbnails of the real images, once; the synthetic rows reuse them in turn
    real_manifest = pd.DataFrame({"sample_id": [str(p.relative_to(images)) for p in real], "path": [str(p) for p in real],
                                  "label": 0, "label_name": "x", "group": "", "sha256": "", "width": 512,
                                  "height": 512, "mode": "RGB"})
    real_manifest.to_csv(out / "real_manifest.tsv", sep="\t", index=False)
    started = time.perf_counter()
    real_thumbs = make_thumbnails(out / "real_manifest.tsv", out / "real_thumbs", out / "real_thumbs.tsv", px=96,
                                  threads=2)
    thumb_seconds = time.perf_counter() - started
    per_image = real_thumbs["bytes"].mean()

    labels = rng.integers(0, n_classes, n)
    sample_ids = [f"class_{labels[i]}/image_{i:06d}.png" for i in range(n)]
    manifest = pd.DataFrame({"sample_id": sample_ids, "path": [f"/nonexistent/{s}" for s in sample_ids],
                             "label": labels, "label_name": [f"class_{v}" for v in labels],
                             "group": [f"patient_{i // 7}" for i in range(n)], "sha256": "",
                             "width": rng.choice([256, 512, 1024], n), "height": rng.choice([256, 512], n),
                             "mode": "RGB"})
    manifest.to_csv(out / "manifest.tsv", sep="\t", index=False)
    holdout = rng.random(n) < 0.2
    pd.DataFrame({"sample_id": sample_ids, "label": labels, "group": manifest["group"],
                  "partition": np.where(holdout, "holdout", "train"),
                  "fold": np.where(holdout, -1, rng.integers(0, 5, n))}).to_csv(out / "split.tsv", sep="\t",
                                                                               index=False)
    thumbs = out / "thumbs"
    thumbs.mkdir(exist_ok=True)
    names = [name for name in real_thumbs["thumbnail"] if name]
    rows = []
    for i in range(n):
        name = f"{i:06d}.jpg"
        shutil.copyfile(out / "real_thumbs" / names[i % len(names)], thumbs / name)
        rows.append({"row": i, "sample_id": sample_ids[i], "thumbnail": name,
                     "bytes": (thumbs / name).stat().st_size, "status": "ok"})
    pd.DataFrame(rows).to_csv(out / "thumbs.tsv", sep="\t", index=False)

    layouts, predictions = {}, {}
    held = np.flatnonzero(holdout)
    for m in range(n_models):
        sweep = Sweep(layouts=rng.normal(size=(len(N_NEIGHBORS), len(MIN_DIST), n, 2)).astype(np.float32) * 5,
                      n_neighbors=N_NEIGHBORS, n_neighbors_effective=N_NEIGHBORS, min_dist=MIN_DIST, labels=labels,
                      sample_id=np.asarray(sample_ids, dtype=object),
                      attrs={"model_id": f"model_{m:02d}", "dataset_id": "synthetic", "clipped": {},
                             "class_names": []})
        layouts[f"model_{m:02d}"] = out / f"layouts_{m:02d}.h5"
        write_layouts(layouts[f"model_{m:02d}"], sweep)
        predictions[f"model_{m:02d}"] = out / f"predictions_{m:02d}.tsv"
        pd.DataFrame({"sample_id": np.repeat(np.asarray(sample_ids)[held], 5), "label": np.repeat(labels[held], 5),
                      "fold": np.tile(np.arange(5), len(held)),
                      "prediction": np.where(rng.random(5 * len(held)) < 0.8, np.repeat(labels[held], 5),
                                             rng.integers(0, n_classes, 5 * len(held)))}).to_csv(
            predictions[f"model_{m:02d}"], sep="\t", index=False)
    return {"layouts": layouts, "predictions": predictions, "real_thumbnails": len(names),
            "real_thumbnail_seconds": round(thumb_seconds, 1), "real_thumbnail_mean_bytes": round(float(per_image))}


def measure_page(page: Path, timeout: float = 300) -> dict:
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    from explorer_check import POINT_ON_SCREEN, console_errors
    from report_screenshot import driver_for, wait_for

    driver = driver_for(None, None, 1400, 1000, console=True)
    figures: dict = {}
    try:
        started = time.perf_counter()
        driver.get(page.resolve().as_uri())
        wait_for(driver, "const E = window.MEDPROBE_EXPLORER; return E && E.state && E.state.switch_ms !== null",
                 timeout=timeout, what="first layout")
        figures["page_load_s"] = round(time.perf_counter() - started, 2)
        figures["first_layout_js_ms"] = round(driver.execute_script("return window.MEDPROBE_EXPLORER.state.switch_ms"))
        models = driver.execute_script("return window.MEDPROBE_EXPLORER.models.map(m => m.name)")

        def switch(script: str, *args) -> tuple[float, float]:
            start = time.perf_counter()
            driver.execute_script("window.MEDPROBE_EXPLORER.state.switch_ms = null; " + script, *args)
            wait_for(driver, "return window.MEDPROBE_EXPLORER.state.switch_ms !== null", timeout=timeout)
            # one more animation frame: the canvas has been repainted when it fires
            driver.execute_async_script("const done = arguments[arguments.length - 1]; "
                                        "requestAnimationFrame(() => requestAnimationFrame(() => done(1)))")
            return time.perf_counter() - start, driver.execute_script(
                "return window.MEDPROBE_EXPLORER.state.switch_ms")

        new_model = [switch("window.MEDPROBE_EXPLORER.model_select.value = arguments[0]", m) for m in models[1:4]]
        figures["model_switch_first_time_s"] = [round(s, 2) for s, _ in new_model]
        settings = [switch("const E = window.MEDPROBE_EXPLORER; E.nn_select.value = arguments[0]; "
                           "E.md_select.value = arguments[1]", str(k), str(d))
                    for k, d in [(50, 0.5), (1000, 1.0), (3, 0.1), (200, 0.25)]]
        figures["setting_switch_s"] = [round(s, 2) for s, _ in settings]
        figures["setting_switch_js_ms"] = [round(ms) for _, ms in settings]
        back = [switch("window.MEDPROBE_EXPLORER.model_select.value = arguments[0]", m) for m in models[1:4]]
        figures["model_switch_loaded_s"] = [round(s, 2) for s, _ in back]
        colour = time.perf_counter()
        driver.execute_script("window.MEDPROBE_EXPLORER.colour_select.value = 'probe: right/wrong'")
        figures["recolour_s"] = round(time.perf_counter() - colour, 2)

        index = driver.execute_script("return Math.floor(window.MEDPROBE_EXPLORER.source.data.x.length / 2)")
        x, y, _, _ = driver.execute_script(POINT_ON_SCREEN, index)
        start = time.perf_counter()
        actions = ActionBuilder(driver)
        actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
        actions.perform()
        wait_for(driver, """
            const found = [];
            const visit = root => { for (const el of root.querySelectorAll('*')) {
              if (el.classList && el.classList.contains('medprobe-hover')) found.push(el);
              if (el.shadowRoot) visit(el.shadowRoot); } };
            visit(document);
            return found.some(el => el.getClientRects().length && el.querySelector('img').naturalWidth > 0)""",
                 timeout=60, what="tooltip")
        figures["hover_tooltip_s"] = round(time.perf_counter() - start, 2)

        start = time.perf_counter()
        count = driver.execute_script("""
            const E = window.MEDPROBE_EXPLORER, d = E.source.data, rows = [];
            for (let j = 0; j < d.x.length; j++) if (d.x[j] > 0 && d.y[j] > 0) rows.push(j);
            E.source.selected.indices = rows; return rows.length""")
        wait_for(driver, "return window.MEDPROBE_EXPLORER.listing.text.includes('selected')", timeout=60)
        csv_rows = driver.execute_script("return window.MEDPROBE_EXPLORER.selectionCSV().split('\\n').length - 2")
        figures["select_and_list_s"] = round(time.perf_counter() - start, 2)
        figures["selected"], figures["csv_rows"] = count, csv_rows
        figures["js_heap_mb"] = round(driver.execute_script(
            "return performance.memory ? performance.memory.usedJSHeapSize / 1048576 : -1"))
        figures["console_errors"] = console_errors(driver)
    finally:
        driver.quit()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "brain_mr" / "Training")
    parser.add_argument("--out", type=Path, default=Path("/tmp/explorer_scale"))
    parser.add_argument("--n", type=int, default=28160)
    parser.add_argument("--models", type=int, default=16)
    args = parser.parse_args()
    from medprobe.explorer import build_explorer

    if args.out.exists():
        shutil.rmtree(args.out)
    data = synthetic_dataset(args.out, args.images, args.n, args.models)
    started = time.perf_counter()
    page = build_explorer("synthetic", args.out / "manifest.tsv", args.out / "split.tsv", args.out / "thumbs",
                          args.out / "thumbs.tsv", data["layouts"], args.out / "explorer",
                          model_names={m: m.replace("_", " ") for m in data["layouts"]},
                          predictions=data["predictions"])
    build = time.perf_counter() - started
    explorer = args.out / "explorer"
    sizes = {part: sum(p.stat().st_size for p in (explorer / part).rglob("*") if p.is_file()) / 2 ** 20
             for part in ("thumbs", "layouts")}
    figures = {"points": args.n, "models": args.models, "layouts_per_model": len(N_NEIGHBORS) * len(MIN_DIST),
               "build_s": round(build, 1), "index_html_mb": round(page.stat().st_size / 2 ** 20, 1),
               "thumbs_mb": round(sizes["thumbs"], 1), "layouts_mb": round(sizes["layouts"], 1),
               "one_model_file_mb": round((explorer / "layouts" / "m00.js").stat().st_size / 2 ** 20, 1),
               **{k: v for k, v in data.items() if k.startswith("real_")}}
    figures.update(measure_page(page))
    print(json.dumps(figures, indent=1))
    return 0 if not figures["console_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
