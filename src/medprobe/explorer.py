"""The atlas explorer: one interactive page per dataset, to see the image behind every point of every UMAP layout.

results/thumbnails/{dataset}/ + {dataset}.tsv   (rule thumbnails, once per dataset, not per model)
    one small JPEG per manifest row (<row>.jpg), sized so that all of them fit `budget_mb`; the TSV names each
    image's thumbnail, or why there is none (an unreadable image still gets its point, without a picture).
results/explorer/{dataset}/                     (rule explorer)
    index.html           a Bokeh standalone document: BokehJS inlined, WebGL points, no server, no network access;
                         opens from disk and inside `snakemake --report report.zip`
    thumbs/              the dataset's thumbnails (hard links where the file system allows)
    layouts/mNN.js       one file per model, loaded when the model is picked: every (n_neighbors, min_dist) layout,
                         quantised to uint16 per layout (1/65534 of its extent), its hold-out predictions and
                         probe correctness; a <script> file rather than JSON, because a page opened from disk may
                         not fetch() its neighbours

Why Bokeh: its standalone output is one HTML file whose JavaScript is inlined, draws tens of thousands of points with
WebGL, and brings the hover, lasso, box and tap tools, widgets and CustomJS callbacks this page needs, with no server.
Plotly's WebGL scatter has no image tooltips without custom JS either; Datashader and TensorBoard's projector need a
server; Embedding Atlas needs its own viewer. Everything the page does beyond Bokeh's tools is the small script below.

In the page: the model, n_neighbors and min_dist; colour by class, split (hold-out or CV fold), any nuisance
attribute the bias audit records (group, size, aspect ratio, mode, format, folder, and the OCR text when it ran) and
probe correctness on the hold-out (majority of the fold models); hover for the thumbnail, file, label and
prediction; lasso or box select to list the files and their class counts, saved as CSV; tap (or find by name) pins
an image, which stays marked, like the selection, when the model or setting changes.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from medprobe import files

log = logging.getLogger(__name__)

MISSING = 65535  # the quantised coordinate of a point a layout does not have (its features were NaN)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5"]
OTHER_COLOUR = "#d9d9d9"
MAX_CATEGORIES = 12  # an attribute with more values shows its 11 most common and "other"


# --- thumbnails -------------------------------------------------------------------------------------------------------

def _thumbnail(path: str, px: int, quality: int) -> tuple[bytes | None, str]:
    import io

    from medprobe.imageio import load_rgb

    try:
        image = load_rgb(path, draft=2 * px)
        image.thumbnail((px, px))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
        return buffer.getvalue(), "ok"
    except Exception as err:  # noqa: BLE001 - any unreadable image is named, and the page is built without it
        return None, f"unreadable: {type(err).__name__}: {str(err)[:200]}"


def thumbnail_size(manifest: pd.DataFrame, px: int, budget_mb: float, quality: int, sample: int = 64) -> int:
    """The largest side <= px whose thumbnails, estimated from a sample of the dataset, fit budget_mb in total (a
    JPEG's headers do not shrink with its area, so the side is re-measured until the estimate fits)."""
    rows = manifest.sample(min(sample, len(manifest)), random_state=0) if len(manifest) else manifest
    budget, side = budget_mb * 2 ** 20, px
    while True:
        sizes = [len(b) for b, _ in (_thumbnail(p, side, quality) for p in rows["path"]) if b is not None]
        projected = float(np.mean(sizes)) * len(manifest) if sizes else 0.0
        if projected <= budget or side <= 16:
            return side
        side = max(16, int(side * min(0.9, math.sqrt(budget / projected))))


def make_thumbnails(manifest_path: str | Path, out_dir: str | Path, out_tsv: str | Path, *, px: int = 96,
                    budget_mb: float = 300.0, quality: int = 80, threads: int = 1) -> pd.DataFrame:
    """One JPEG per manifest row, into out_dir (written aside and renamed into place), and the TSV naming them."""
    from medprobe.manifest import read_manifest

    manifest = read_manifest(manifest_path)
    side = thumbnail_size(manifest, px, budget_mb, quality)
    if side < px:
        log.info("thumbnails at %d px instead of %d: %d images must fit %.0f MB", side, px, len(manifest), budget_mb)
    rows = []
    with files.atomic_directory(out_dir) as staging, ThreadPoolExecutor(max(1, threads)) as pool:
        for row, (data, status) in enumerate(pool.map(lambda p: _thumbnail(p, side, quality), manifest["path"])):
            name = ""
            if data is not None:
                name = f"{row:06d}.jpg"
                (staging / name).write_bytes(data)
            else:
                log.warning("%s: %s", manifest["sample_id"].iloc[row], status)
            rows.append({"row": row, "sample_id": manifest["sample_id"].iloc[row], "thumbnail": name,
                         "bytes": len(data) if data else 0, "status": status})
    table = pd.DataFrame(rows, columns=["row", "sample_id", "thumbnail", "bytes", "status"])
    files.write_tsv(out_tsv, table)
    log.info("%d thumbnails (%d px, %.1f MB), %d unreadable", int((table["thumbnail"] != "").sum()), side,
             table["bytes"].sum() / 2 ** 20, int((table["thumbnail"] == "").sum()))
    return table


# --- the data the page reads ------------------------------------------------------------------------------------------

def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).decode()


def quantise(layout: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """(N, 2) float coordinates (NaN: missing) -> uint16 codes on one square grid, and [x0, y0, step] to undo it."""
    finite = np.isfinite(layout).all(axis=1)
    if not finite.any():
        return np.full(layout.shape, MISSING, dtype=np.uint16), [0.0, 0.0, 1.0]
    low = layout[finite].min(axis=0)
    span = float((layout[finite].max(axis=0) - low).max()) or 1.0
    step = span / (MISSING - 1)
    codes = np.full(layout.shape, MISSING, dtype=np.uint16)
    codes[finite] = np.rint((layout[finite] - low) / step).astype(np.uint16)
    return codes, [float(low[0]), float(low[1]), step]


def holdout_predictions(predictions: pd.DataFrame, sample_ids: Sequence[str], labels: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per manifest row: the fold models' majority prediction (-1: not in the hold-out), how many fold models made
    it, and correctness (0 not in the hold-out, 1 right, 2 wrong)."""
    position = {s: i for i, s in enumerate(sample_ids)}
    predicted = np.full(len(sample_ids), -1, dtype=np.int16)
    agree = np.zeros(len(sample_ids), dtype=np.uint8)
    for sample_id, rows in predictions.groupby("sample_id", sort=False):
        if sample_id not in position:
            continue
        counts = rows["prediction"].value_counts()
        top = counts[counts == counts.max()].index.min()  # a tie goes to the lower class index
        predicted[position[sample_id]] = int(top)
        agree[position[sample_id]] = int(counts.max())
    correct = np.where(predicted < 0, 0, np.where(predicted == labels, 1, 2)).astype(np.uint8)
    return predicted, agree, correct


def categorical(values: Sequence, name: str) -> dict:
    """An attribute as codes into at most MAX_CATEGORIES names (most common first; the rest is "other")."""
    series = pd.Series(values, dtype=object).fillna("").astype(str).replace("", "(none)")
    counts = series.value_counts()
    keep = list(counts.index[:MAX_CATEGORIES - 1]) if len(counts) > MAX_CATEGORIES else list(counts.index)
    if all(str(k).isdigit() for k in keep):
        keep = sorted(keep, key=int)
    names = keep + (["other"] if len(counts) > len(keep) else [])
    index = {k: i for i, k in enumerate(keep)}
    codes = np.asarray([index.get(v, len(keep)) for v in series], dtype=np.int16)
    return {"name": name, "codes": codes.tolist(), "names": [str(n) for n in names]}


def model_script(key: str, sweep, sample_ids: Sequence[str], labels: np.ndarray,
                 predictions: pd.DataFrame | None) -> str:
    """layouts/<key>.js: every layout of one model over the manifest's rows, and its hold-out predictions."""
    position = {s: i for i, s in enumerate(sample_ids)}
    rows = np.asarray([position.get(s, -1) for s in sweep.sample_id])
    keep = rows >= 0
    settings, scales, codes = [], [], []
    for a, k in enumerate(sweep.n_neighbors):
        for b, d in enumerate(sweep.min_dist):
            full = np.full((len(sample_ids), 2), np.nan, dtype=np.float64)
            full[rows[keep]] = sweep.layouts[a, b][keep]
            quantised, scale = quantise(full)
            settings.append([int(k), float(d)])
            scales.append(scale)
            codes.append(quantised)
    payload = {"settings": settings, "scales": scales, "n": len(sample_ids),
               "coords": _b64(np.stack(codes).astype(np.uint16)),
               "clipped": {str(k): int(v) for k, v in sweep.clipped.items()}}
    if predictions is not None:
        predicted, agree, correct = holdout_predictions(predictions, sample_ids, labels)
        payload.update(predicted=_b64(predicted), agree=_b64(agree), correct=_b64(correct),
                       n_folds=int(predictions["fold"].nunique()))
    return (f"window.MEDPROBE_LAYOUTS = window.MEDPROBE_LAYOUTS || {{}};\n"
            f"window.MEDPROBE_LAYOUTS[{json.dumps(key)}] = {json.dumps(payload, separators=(',', ':'))};\n")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


# --- the page ---------------------------------------------------------------------------------------------------------

PAGE_JS = r"""
const E = window.MEDPROBE_EXPLORER = window.MEDPROBE_EXPLORER || {};
Object.assign(E, {source, pinned, plot, model_select, nn_select, md_select, colour_select, status, legend, listing,
                  models: meta.models, labels: meta.labels, classes: meta.classes, attributes: meta.attributes,
                  state: {model: null, setting: null, loaded: {}, switch_ms: null, errors: []}});
E.decode = function(b64, Type) {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  return new Type(bytes.buffer);
};
E.load = function(key, done) {
  if (E.state.loaded[key]) { done(E.state.loaded[key]); return; }
  const raw = (window.MEDPROBE_LAYOUTS || {})[key];
  if (raw) { done(E.unpack(key, raw)); return; }
  const tag = document.createElement("script");
  tag.src = "layouts/" + key + ".js";
  tag.onload = () => done(E.unpack(key, window.MEDPROBE_LAYOUTS[key]));
  tag.onerror = () => { E.state.errors.push("cannot load " + tag.src); E.status.text = "cannot load " + tag.src; };
  document.head.appendChild(tag);
};
E.unpack = function(key, raw) {
  const entry = {settings: raw.settings, scales: raw.scales, n: raw.n, clipped: raw.clipped,
                 coords: E.decode(raw.coords, Uint16Array), n_folds: raw.n_folds || 0};
  if (raw.predicted) {
    entry.predicted = E.decode(raw.predicted, Int16Array);
    entry.agree = E.decode(raw.agree, Uint8Array);
    entry.correct = E.decode(raw.correct, Uint8Array);
  }
  delete window.MEDPROBE_LAYOUTS[key];  // keep only the decoded copy
  E.state.loaded[key] = entry;
  return entry;
};
E.current = function() {
  const model = E.models.find(m => m.name === E.model_select.value) || E.models[0];
  return {model, setting: [Number(E.nn_select.value), Number(E.md_select.value)]};
};
E.apply = function() {
  const started = performance.now();
  const {model, setting} = E.current();
  E.status.text = "loading " + model.name + " …";
  E.load(model.key, entry => {
    let s = entry.settings.findIndex(v => v[0] === setting[0] && Math.abs(v[1] - setting[1]) < 1e-9);
    if (s < 0) s = 0;
    const n = entry.n, base = s * n * 2, [x0, y0, step] = entry.scales[s];
    const x = new Float64Array(n), y = new Float64Array(n), c = entry.coords;
    for (let i = 0; i < n; i++) {
      const cx = c[base + 2 * i], cy = c[base + 2 * i + 1];
      x[i] = cx === 65535 ? NaN : x0 + cx * step;
      y[i] = cy === 65535 ? NaN : y0 + cy * step;
    }
    const data = E.source.data;
    data.x = x; data.y = y;
    if (E.state.model !== model.key || E.state.setting === null || s !== E.state.setting_index) E.fit(x, y);
    const prediction = new Array(n);
    for (let i = 0; i < n; i++) {
      if (!entry.predicted) prediction[i] = "(no probe)";
      else if (entry.predicted[i] < 0) prediction[i] = "(not in the hold-out)";
      else prediction[i] = E.classes[entry.predicted[i]] + " (" + entry.agree[i] + "/" + entry.n_folds +
                           " fold models)" + (entry.correct[i] === 1 ? " ✓" : " ✗");
    }
    data.prediction = prediction;
    E.state.model = model.key; E.state.setting = entry.settings[s]; E.state.setting_index = s;
    E.recolour(false);
    E.source.change.emit();
    E.repin();
    E.state.switch_ms = performance.now() - started;
    const clipped = entry.clipped[String(entry.settings[s][0])];
    E.status.text = model.name + ": n_neighbors " + entry.settings[s][0] +
                    (clipped ? " (clipped to " + clipped + ")" : "") + ", min_dist " + entry.settings[s][1] +
                    " · " + n + " images · drawn in " + E.state.switch_ms.toFixed(0) + " ms";
  });
};
E.fit = function(x, y) {  // the whole layout in view, equal units on both axes
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < x.length; i++) if (isFinite(x[i]) && isFinite(y[i])) {
    x0 = Math.min(x0, x[i]); x1 = Math.max(x1, x[i]); y0 = Math.min(y0, y[i]); y1 = Math.max(y1, y[i]); }
  if (!isFinite(x0)) return;
  const w = E.plot.inner_width || E.plot.width, h = E.plot.inner_height || E.plot.height;
  let sx = (x1 - x0) || 1, sy = (y1 - y0) || 1;
  if (sx / sy > w / h) sy = sx * h / w; else sx = sy * w / h;
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  E.plot.x_range.setv({start: cx - 0.53 * sx, end: cx + 0.53 * sx});
  E.plot.y_range.setv({start: cy - 0.53 * sy, end: cy + 0.53 * sy});
};
E.codes = function(name) {
  if (name === "probe: right/wrong") {
    const entry = E.state.loaded[E.state.model];
    if (!entry || !entry.correct) return null;
    return {codes: Array.from(entry.correct), names: ["not in the hold-out", "right", "wrong"],
            colours: ["#e0e0e0", "#1a9850", "#d73027"]};
  }
  return E.attributes[name] || null;
};
E.recolour = function(emit = true) {
  const attr = E.codes(E.colour_select.value) || E.attributes["class"];
  const colours = attr.colours || attr.names.map((v, i) => v === "other" ? meta.other : meta.palette[i % meta.palette.length]);
  const n = attr.codes.length, colour = new Array(n), counts = new Array(attr.names.length).fill(0);
  for (let i = 0; i < n; i++) { colour[i] = colours[attr.codes[i]]; counts[attr.codes[i]] += 1; }
  E.source.data.colour = colour;
  E.legend.text = "<b>" + E.colour_select.value + "</b><br>" + attr.names.map((v, i) =>
    '<span style="display:inline-block;width:10px;height:10px;background:' + colours[i] + '"></span> ' +
    E.escape(v) + " (" + counts[i] + ")").join("<br>");
  if (emit) E.source.change.emit();
};
E.escape = s => String(s).replace(/[&<>"']/g, ch => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[ch]));
E.selected = () => E.source.selected.indices.slice().sort((a, b) => a - b);
E.selectionRows = function() {
  const d = E.source.data;
  return E.selected().map(i => ({file: d.file[i], label: d.label[i], split: d.split[i], prediction: d.prediction[i]}));
};
E.selectionCSV = function() {
  const q = v => '"' + String(v).replace(/"/g, '""') + '"';
  return ["file,label,split,prediction"].concat(
    E.selectionRows().map(r => [r.file, r.label, r.split, r.prediction].map(q).join(","))).join("\n") + "\n";
};
E.list = function() {
  const rows = E.selectionRows();
  if (!rows.length) { E.listing.text = "Select points (lasso or box) to list their images."; return; }
  const counts = {};
  rows.forEach(r => counts[r.label] = (counts[r.label] || 0) + 1);
  const shown = rows.slice(0, meta.max_listed);
  E.listing.text = "<b>" + rows.length + " selected</b>: " + Object.entries(counts).map(([k, v]) =>
    E.escape(k) + " " + v).join(", ") + "<ol class='medprobe-selection'>" + shown.map(r => "<li>" +
    E.escape(r.file) + " · " + E.escape(r.label) + "</li>").join("") + "</ol>" +
    (rows.length > shown.length ? "… and " + (rows.length - shown.length) + " more (save the CSV for all)" : "");
};
E.save = function() {
  const blob = new Blob([E.selectionCSV()], {type: "text/csv"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = meta.dataset + "_selection.csv";
  document.body.appendChild(a); a.click(); a.remove();
};
E.pin = function(rows) { E.state.pinned = rows; E.repin(); };
E.repin = function() {
  const rows = E.state.pinned || [], d = E.source.data;
  E.pinned.data = {x: rows.map(i => d.x[i]), y: rows.map(i => d.y[i]), file: rows.map(i => d.file[i])};
};
E.find = function(text) {
  const t = String(text).toLowerCase();
  if (!t) { E.pin([]); return; }
  const hit = E.source.data.file.findIndex(f => f.toLowerCase().includes(t));
  E.pin(hit >= 0 ? [hit] : []);
};
E.apply();
E.list();
"""


def build_explorer(dataset_id: str, manifest_path: str | Path, split_path: str | Path,
                   thumbnails_dir: str | Path, thumbnails_tsv: str | Path,
                   layouts: Mapping[str, str | Path], out_dir: str | Path, *,
                   model_names: Mapping[str, str], predictions: Mapping[str, str | Path] | None = None,
                   ocr_path: str | Path | None = None, class_names: Sequence[str] | None = None,
                   dataset_name: str | None = None, max_listed: int = 200) -> Path:
    """Write results/explorer/{dataset}/: index.html, thumbs/, layouts/mNN.js (written aside, renamed into place)."""
    from bokeh.document import Document
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models import (BoxSelectTool, Button, ColumnDataSource, CustomJS, Div, HoverTool, LassoSelectTool,
                              Range1d, Select, TapTool, TextInput)
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    from medprobe.manifest import class_names_of, read_manifest
    from medprobe.nuisance import nuisance_attributes, read_ocr, text_attributes
    from medprobe.split import read_split
    from medprobe.umap_sweep import read_layouts

    manifest = read_manifest(manifest_path)
    split = read_split(split_path).set_index("sample_id")
    thumbs = pd.read_csv(thumbnails_tsv, sep="\t", keep_default_na=False, dtype={"sample_id": str, "thumbnail": str})
    if list(thumbs["sample_id"]) != list(manifest["sample_id"]):
        raise ValueError(f"{thumbnails_tsv}: does not list {manifest_path}'s images in its order: rerun the "
                         f"thumbnails rule (snakemake --forcerun thumbnails)")
    sample_ids = manifest["sample_id"].tolist()
    labels = manifest["label"].to_numpy()
    classes = list(class_names or class_names_of(manifest))
    n = len(manifest)

    partition = split.reindex(sample_ids)
    split_names = np.where(partition["partition"].to_numpy() == "holdout", "hold-out",
                           np.asarray([f"fold {int(f)}" if f == f and f >= 0 else "(not split)"
                                       for f in partition["fold"].to_numpy()], dtype=object))
    attributes = {"class": categorical([classes[i] for i in labels], "class"),
                  "split": categorical(split_names, "split")}
    attributes["class"]["names"] = classes  # every class, in the registry's order, with its fixed colour
    attributes["class"]["codes"] = labels.astype(int).tolist()
    nuisance = nuisance_attributes(manifest)
    if ocr_path:
        nuisance.update(text_attributes(read_ocr(ocr_path), sample_ids))
    for name, values in nuisance.items():
        attributes[name] = categorical(values, name)

    out_dir = Path(out_dir)
    with files.atomic_directory(out_dir) as staging:
        (staging / "thumbs").mkdir()
        (staging / "layouts").mkdir()
        thumb_paths = []
        for name in thumbs["thumbnail"]:
            if name:
                _link_or_copy(Path(thumbnails_dir) / name, staging / "thumbs" / name)
                thumb_paths.append(f"thumbs/{name}")
            else:
                thumb_paths.append("")
        models = []
        settings = None
        for index, (model_id, path) in enumerate(layouts.items()):
            key = f"m{index:02d}"
            sweep = read_layouts(path)
            table = None
            if predictions and model_id in predictions:
                table = pd.read_csv(predictions[model_id], sep="\t", dtype={"sample_id": str})
            (staging / "layouts" / f"{key}.js").write_text(model_script(key, sweep, sample_ids, labels, table),
                                                          encoding="utf-8")
            models.append({"key": key, "id": model_id, "name": model_names.get(model_id, model_id)})
            settings = settings or (sweep.n_neighbors, sweep.min_dist)
        if not models:
            raise ValueError(f"{dataset_id}: no UMAP layouts to explore")

        unreadable = thumbs[thumbs["thumbnail"] == ""]
        source = ColumnDataSource({
            "x": np.full(n, np.nan), "y": np.full(n, np.nan), "colour": ["#999999"] * n,
            "file": sample_ids, "label": [classes[i] for i in labels], "split": split_names.tolist(),
            "prediction": [""] * n, "thumb": thumb_paths,
            "has_thumb": ["block" if t else "none" for t in thumb_paths]})
        pinned = ColumnDataSource({"x": [], "y": [], "file": []})
        plot = figure(width=700, height=640, output_backend="webgl", x_range=Range1d(0, 1), y_range=Range1d(0, 1),
                      tools="pan,wheel_zoom,reset,save", active_scroll="wheel_zoom",
                      title=f"{dataset_name or dataset_id}: {n} images")
        plot.xaxis.visible = plot.yaxis.visible = False
        plot.grid.visible = False
        size = 7 if n <= 2000 else 4 if n <= 10000 else 3
        points = plot.scatter("x", "y", source=source, size=size, fill_color="colour", line_color=None,
                              fill_alpha=0.8, selection_fill_alpha=1.0, nonselection_fill_alpha=0.15)
        plot.scatter("x", "y", source=pinned, size=18, fill_color=None, line_color="black", line_width=2.5)
        hover = HoverTool(renderers=[points], tooltips="""
            <div class="medprobe-hover" style="max-width:260px">
              <img src="@thumb" style="display:@has_thumb;max-width:160px;max-height:160px;image-rendering:auto">
              <div><b>@file</b></div><div>label: @label</div><div>@split</div><div>prediction: @prediction</div>
            </div>""")
        plot.add_tools(hover, LassoSelectTool(renderers=[points]), BoxSelectTool(renderers=[points]),
                       TapTool(renderers=[points]))

        model_select = Select(title="model", value=models[0]["name"], options=[m["name"] for m in models])
        nn_select = Select(title="n_neighbors", value=str(settings[0][0]), options=[str(k) for k in settings[0]])
        md_select = Select(title="min_dist", value=str(settings[1][0]), options=[str(d) for d in settings[1]])
        colour_select = Select(title="colour by", value="class",
                               options=list(attributes) + (["probe: right/wrong"] if predictions else []))
        status, legend = Div(text="loading …", width=340), Div(text="", width=340)
        listing = Div(text="", width=340, height=300, styles={"overflow-y": "auto"})
        find = TextInput(title="find and pin an image (part of its file name)", width=340)
        save = Button(label="Save the selection as CSV", width=340)
        notes = Div(width=340, text=(
            f"<b>{len(unreadable)} image(s) without a thumbnail</b> (unreadable): "
            + ", ".join(_escape(s) for s in unreadable["sample_id"][:50])
            + (" …" if len(unreadable) > 50 else "") if len(unreadable) else ""))
        meta = {"dataset": dataset_id, "models": models, "labels": [classes[i] for i in labels], "classes": classes,
                "attributes": attributes, "palette": PALETTE, "other": OTHER_COLOUR, "max_listed": max_listed}
        args = dict(source=source, pinned=pinned, plot=plot, model_select=model_select, nn_select=nn_select,
                    md_select=md_select, colour_select=colour_select, status=status, legend=legend,
                    listing=listing, meta=meta)
        setup = CustomJS(args=args, code=PAGE_JS)
        call = lambda code: CustomJS(code="const E = window.MEDPROBE_EXPLORER; " + code)  # noqa: E731
        for widget in (model_select, nn_select, md_select):
            widget.js_on_change("value", call("E.apply();"))
        colour_select.js_on_change("value", call("E.recolour();"))
        source.selected.js_on_change("indices", call("E.list();"))
        find.js_on_change("value", call("E.find(cb_obj.value);"))
        save.js_on_event("button_click", call("E.save();"))
        plot.select_one(TapTool).callback = call("E.pin(E.source.selected.indices.slice(0, 1));")
        panel = column(model_select, row(nn_select, md_select), colour_select, status, legend, find, save, listing,
                       notes)
        document = Document()
        document.add_root(row(plot, panel))
        document.js_on_event("document_ready", setup)
        html = file_html(document, INLINE, title=f"medprobe explorer: {dataset_name or dataset_id}")
        (staging / "index.html").write_text(html, encoding="utf-8")
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    log.info("%s: %d models x %d layouts, %d images; %.1f MB on disk", out_dir / "index.html", len(models),
             len(settings[0]) * len(settings[1]), n, size / 2 ** 20)
    return out_dir / "index.html"


def _escape(text: str) -> str:
    import html

    return html.escape(str(text))
