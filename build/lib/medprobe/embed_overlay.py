"""The typographic probe's extraction: the probe's hold-out images, each written with every word of every word set
(medprobe.overlay), through the model's own preprocessing and feature point (medprobe.embed), into the embedding
schema with per-row columns image_id, word_set, word and an `overlay` attr (style, word sets, sizes used)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image

from medprobe.overlay import OverlayStyle, overlay_table, probe_plan, render

log = logging.getLogger(__name__)


class WriteWord:
    """The DataLoader's picture hook: row r of the overlay table gets its word written on it (picklable)."""

    def __init__(self, words: Sequence[str], styles: Sequence[OverlayStyle]):
        self.words = list(words)
        self.styles = list(styles)

    def __call__(self, row: int, image: Image.Image) -> Image.Image:
        return render(image, self.words[row], self.styles[row])


def embed_overlays(dataset_id: str, model_id: str, model_spec: Mapping, manifest_path: str | Path,
                   split_path: str | Path, out_path: str | Path, bias: Mapping[str, Any], *,
                   weights_json: str | Path | None = None, class_names: Sequence[str] | None = None,
                   device: str = "auto", threads: int = 1, seed: int = 0, progress_file=None) -> Path:
    """The `embed_overlay` rule. Every setting is checked (font, word sets, every word fitting the smallest and the
    narrowest image) before the model is built."""
    import torch

    from medprobe import models
    from medprobe.embed import extract_embeddings, plan_threads, resolve_device
    from medprobe.files import file_sha256
    from medprobe.manifest import class_names_of, read_manifest
    from medprobe.split import read_split
    from medprobe.weights import read_record, record_paths

    manifest = read_manifest(manifest_path)
    names = class_names_of(manifest, class_names)
    images, plan = probe_plan(manifest, read_split(split_path), bias, names, seed=seed, dataset_id=dataset_id)
    table = overlay_table(images, plan)
    record = read_record(weights_json, model_id) if weights_json else None
    encoder = models.build_encoder(model_id, model_spec, record_paths(record) if record else None)
    torch_threads, num_workers = plan_threads(threads, resolve_device(device), encoder.neural)
    torch.set_num_threads(torch_threads)
    log.info("typographic probe of '%s' on '%s': %d image(s) x %d word(s) = %d overlaid image(s); word sets %s; "
             "sizes %s", model_id, dataset_id, len(images), len(plan.words()), len(table), plan.word_sets,
             plan.set_sizes)
    overlay = {"style": plan.style.as_dict(), "word_sets": plan.word_sets, "set_sizes": plan.set_sizes,
               "n_images": len(images)}
    return extract_embeddings(table, encoder, out_path, dataset_id=dataset_id, class_names=names,
                              manifest_sha256=file_sha256(manifest_path),
                              batch_size=int(model_spec.get("batch_size", 32)), num_workers=num_workers,
                              device=device, progress_file=progress_file,
                              picture=WriteWord(table["word"].tolist(), [plan.style_of(s) for s in table["word_set"]]),
                              extra_attrs={"overlay": overlay},
                              columns={k: table[k].tolist() for k in ("image_id", "word_set", "word")})
