"""Batched, streamed, resumable feature extraction: manifest + encoder -> the HDF5 embedding file.

Images are read, checked against the manifest's sha256 (a changed or deleted image stops the job), decoded and
preprocessed by DataLoader workers; the model runs under torch.inference_mode in fp32 (bf16 autocast only when
embed.amp asks); rows are written in order to a partial file that a rerun continues; the finished file is verified and
renamed into place. An image that fails to decode leaves a NaN row and is counted; more failures than `max_failed`
stop the job.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

import medprobe
from medprobe.errors import DatasetError, EncoderError
from medprobe.imageio import read_source, rgb_from_source
from medprobe.files import file_sha256
from medprobe.manifest import class_names_of, read_manifest
from medprobe.models import Encoder, build_encoder
from medprobe.store import EmbeddingWriter

log = logging.getLogger(__name__)


class ManifestImages(Dataset):
    """The images of a manifest, from row `start` on; an item is (row, tensor or None, error or None, changed).

    The bytes decoded are the bytes hashed: an image whose sha256 differs from the manifest's, or that is gone, is
    `changed` (the job stops: the manifest no longer describes the data); one that fails later becomes a NaN row."""

    def __init__(self, paths: Sequence[str], transform, start: int = 0, draft: int | None = None,
                 sha256: Sequence[str] | None = None, picture=None, load=None, invert: bool = False):
        self.paths = list(paths)
        self.load = load  # (bytes, path, invert) -> tensor: a file-level loader replaces decoding + transform
        # (with overlays: the loader's own pixels, drawn on, then through the loader again as a lossless PNG)
        self.invert = invert
        self.picture = picture  # (row, RGB image) -> RGB image, applied before the transform (the overlays)
        self.sha256 = list(sha256) if sha256 is not None else None
        self.transform = transform
        self.start = start
        self.draft = draft

    def __len__(self) -> int:
        return len(self.paths) - self.start

    def __getitem__(self, i: int):
        row = self.start + i
        try:
            digest, content = read_source(self.paths[row])
        except FileNotFoundError:
            return row, None, "the file no longer exists", True
        except Exception as err:  # noqa: BLE001 - an unreadable file becomes a NaN row, reported by path
            return row, None, f"{type(err).__name__}: {err}", False
        if self.sha256 is not None and digest != self.sha256[row]:
            return row, None, f"its sha256 is now {digest[:12]}..., the manifest has {self.sha256[row][:12]}...", True
        try:
            if self.load is not None and self.picture is None:
                return row, self.load(content, self.paths[row], self.invert), None, False
            if self.load is not None:  # an overlay on a file-level loader's input: drawn on the pixels it reads
                from medprobe.models.cxr_preprocess import overlay_input, study_picture

                drawn = self.picture(row, study_picture(content, self.paths[row], self.invert))
                return row, self.load(*overlay_input(drawn), False), None, False
            image = rgb_from_source(content, draft=self.draft)
            if self.picture is not None:
                image = self.picture(row, image)
            return row, self.transform(image), None, False
        except Exception as err:  # noqa: BLE001 - a failed image becomes a NaN row, reported by path
            return row, None, f"{type(err).__name__}: {err}", False


def collate(items):
    rows = [row for row, _, _, _ in items]
    ok = [(row, x) for row, x, _, _ in items if x is not None]
    failed = [(row, err) for row, x, err, changed in items if x is None and not changed]
    changed = [(row, err) for row, x, err, is_changed in items if is_changed]
    batch = torch.stack([x for _, x in ok]) if ok else None
    return rows, [row for row, _ in ok], batch, failed, changed


def changed_inputs_error(manifest: pd.DataFrame, changed, rebuild: str) -> DatasetError:
    listing = "; ".join(f"{manifest['path'].iat[row]}: {why}" for row, why in changed[:5])
    more = f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
    return DatasetError(f"{len(changed)} image(s) changed since the manifest was built: {listing}{more}. Nothing was "
                        f"published. {rebuild}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EncoderError("embed.device is 'cuda' but torch sees no GPU "
                           f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); set embed.device: auto")
    return torch.device(name)


def library_versions() -> dict[str, str]:
    versions = {"torch_version": torch.__version__, "python_version": platform.python_version()}
    for module, key in (("open_clip", "open_clip_version"), ("timm", "timm_version"),
                        ("torchvision", "torchvision_version")):
        mod = sys.modules.get(module)
        if mod is None:
            try:
                mod = __import__(module)
            except ImportError:
                continue
        versions[key] = getattr(mod, "__version__", "unknown")
    return versions


def draft_size(preprocessing: Mapping[str, Any]) -> int | None:
    """Twice the size the model resizes to (its short side; FLAIR: its long side): JPEG draft mode stops there."""
    size = preprocessing.get("resize", preprocessing.get("size"))
    return 2 * int(size) if isinstance(size, int) else None


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls run in hardware (elsewhere they are emulated, and slower than fp32)."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def use_amp(amp: str, device: torch.device, encoder: Encoder) -> bool:
    """bf16 autocast (a fast path: it changes the features): `bf16` always, `off` never (the default: fp32, as the
    official pipelines); `auto` on a GPU, and on a CPU only where it measured faster (CNNs on a CPU with native
    bf16: ResNet50 2.9x; ViT-B/16 gained nothing; benchmarks/embed_throughput.py)."""
    if not encoder.neural or amp == "off":
        return False
    if amp == "bf16" or device.type == "cuda":
        return True
    return encoder.channels_last and cpu_has_native_bf16()


def extraction_mode(dtype: str, jpeg_draft: int, channels_last: bool) -> str:
    """'exact' (the official pipeline: full decoding, fp32, the official memory layout) or 'fast (...)' naming the
    speed-ups that ran."""
    fast = [name for name, on in (("bf16 autocast", dtype != "float32"), (f"JPEG draft >= {jpeg_draft} px",
                                                                            bool(jpeg_draft)),
                                  ("channels_last", channels_last)) if on]
    return f"fast ({', '.join(fast)})" if fast else "exact"


def extract_embeddings(manifest: pd.DataFrame, encoder: Encoder, out_path: str | Path, *, dataset_id: str,
                       class_names: Sequence[str], manifest_sha256: str, batch_size: int = 32,
                       num_workers: int = 0, device: str = "auto", max_failed: int = 0, amp: str = "off",
                       jpeg_draft: bool = False, channels_last: bool = False, progress_file=None,
                       rebuild_hint: str = "Rebuild the manifest, then extract again.", picture=None,
                       extra_attrs: Mapping[str, Any] | None = None,
                       columns: Mapping[str, Sequence[str]] | None = None, invert: bool = False) -> Path:
    dev = resolve_device(device)
    autocast = use_amp(amp, dev, encoder)
    dtype = "bfloat16-autocast" if autocast else "float32"
    encoder.channels_last = encoder.channels_last and channels_last  # a CNN's fast layout, only when asked
    attrs: dict[str, Any] = {
        "medprobe_version": medprobe.__version__,
        "model_id": encoder.model_id,
        "feature_point": encoder.feature_point,
        "weights": encoder.weights,
        "preprocessing": encoder.preprocessing,
        "dataset_id": dataset_id,
        "manifest_sha256": manifest_sha256,
        "class_names": list(class_names),
        "dtype": dtype,
        "jpeg_draft": (draft_size(encoder.preprocessing) or 0) if jpeg_draft else 0,
        "channels_last": bool(encoder.channels_last),
    }
    load = encoder.extra.get("load")
    if load is not None:  # the loader decodes as its authors did (JPEG draft included): medprobe's draft is off
        attrs["jpeg_draft"] = 0
        attrs["preprocessing"] = {**encoder.preprocessing, "invert": bool(invert)}
    attrs["extraction_mode"] = extraction_mode(dtype, attrs["jpeg_draft"], attrs["channels_last"])
    attrs.update(extra_attrs or {})
    writer = EmbeddingWriter(out_path, labels=manifest["label"].to_numpy(), sample_id=manifest["sample_id"],
                             group=manifest["group"], dim=encoder.dim, attrs=attrs, columns=columns)
    try:
        encoder.to(dev)
        images = ManifestImages(manifest["path"].tolist(), encoder.transform, start=writer.rows_done,
                                draft=attrs["jpeg_draft"] or None,
                                sha256=manifest["sha256"].tolist() if "sha256" in manifest else None,
                                picture=picture, load=load, invert=invert)
        loader = DataLoader(images, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            collate_fn=collate, pin_memory=dev.type == "cuda",
                            persistent_workers=False)
        sample_ids = manifest["sample_id"].tolist()
        bar = tqdm(total=len(manifest), initial=writer.rows_done, desc=f"{dataset_id}/{encoder.model_id}",
                   unit="img", file=progress_file or sys.stderr, mininterval=5.0, ascii=True)
        with torch.inference_mode():
            for rows, ok_rows, batch, failed, changed in loader:
                if changed:
                    raise changed_inputs_error(manifest, changed, rebuild_hint)
                features = np.full((len(rows), encoder.dim), np.nan, dtype=np.float32)
                if batch is not None:
                    batch = batch.to(dev, non_blocking=True)
                    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=autocast):
                        out = encoder.encode(batch)
                    out = out.float().cpu().numpy()
                    if out.shape != (len(ok_rows), encoder.dim):
                        raise EncoderError(f"model '{encoder.model_id}' returned features of shape {out.shape}, "
                                           f"expected ({len(ok_rows)}, {encoder.dim})")
                    features[[r - rows[0] for r in ok_rows]] = out
                failed_ids = []
                for row, err in failed:
                    log.error("could not read %s: %s", manifest["path"].iat[row], err)
                    failed_ids.append(sample_ids[row])
                writer.write(rows[0], features, failed_ids)
                bar.update(len(rows))
                if len(writer.failed) > max_failed:
                    raise EncoderError(
                        f"{len(writer.failed)} image(s) failed to load (embed.max_failed is {max_failed}): "
                        f"{', '.join(writer.failed[:10])} (the reasons are in the log above). Their bytes are the "
                        f"ones the manifest decoded, so look at the preprocessing; or raise embed.max_failed to keep "
                        f"them as NaN rows, left out of every score.")
        bar.close()
        extra = {"device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
                 "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 **library_versions()}
        path = writer.finish(extra)
        log.info("wrote %s: %d x %d, %d failed", path, len(manifest), encoder.dim, len(writer.failed))
        return path
    finally:
        writer.close()


def plan_threads(threads: int, device: torch.device, neural: bool) -> tuple[int, int]:
    """(torch intra-op threads, DataLoader workers) for a job given `threads` cores.

    On a GPU, or for a weight-free encoder, decoding is the bottleneck: every core decodes. On a CPU the network is
    the bottleneck: torch gets the cores and one worker decodes ahead of it.
    """
    threads = max(1, int(threads))
    if device.type == "cuda" or not neural:
        return threads, threads
    return threads, 1 if threads > 1 else 0


def embed_dataset(dataset_id: str, model_id: str, model_spec: Mapping, manifest_path: str | Path,
                  out_path: str | Path, *, weights_json: str | Path | None = None,
                  class_names: Sequence[str] | None = None, device: str = "auto", threads: int = 1,
                  max_failed: int = 0, amp: str = "off", jpeg_draft: bool = False, channels_last: bool = False,
                  progress_file=None, invert: bool = False) -> Path:
    """The `embed` rule: build the encoder from its registry entry and fetched weights, extract every image.
    Defaults are the official pipeline (full decoding, fp32, NCHW); amp, jpeg_draft and channels_last are opt-in
    speed-ups that change the features slightly (benchmarks/fast_vs_exact.py measures by how much). `invert`: the
    dataset's DICOMs are inverted (its registry entry's `dicom: {invert: true}`), for file-level loaders."""
    from medprobe.weights import read_record, record_paths

    manifest = read_manifest(manifest_path)
    names = class_names_of(manifest, class_names)
    record = read_record(weights_json, model_id) if weights_json else None
    encoder = build_encoder(model_id, model_spec, record_paths(record) if record else None)
    if record:
        encoder.weights = {**encoder.weights, "tower_sha256": record.get("tower_sha256"),
                           "files": {role: {k: e[k] for k in ("path", "sha256", "repo", "revision", "url") if k in e}
                                     for role, e in record["files"].items()}}
    torch_threads, num_workers = plan_threads(threads, resolve_device(device), encoder.neural)
    torch.set_num_threads(torch_threads)
    log.info("model '%s': family %s, feature point %s, dim %d, preprocessing %s", model_id, model_spec["family"],
             encoder.feature_point, encoder.dim, json.dumps(encoder.preprocessing))
    log.info("%d torch thread(s), %d DataLoader worker(s)", torch_threads, num_workers)
    rebuild = (f"Rebuild the manifest ({manifest_path}) and everything computed from it: rerun snakemake (the "
               f"manifest rule reruns when files under the dataset root change), or force it with "
               f"`snakemake --forcerun manifest <your usual options>` if the files kept their size and time.")
    return extract_embeddings(manifest, encoder, out_path, dataset_id=dataset_id, class_names=names,
                              manifest_sha256=file_sha256(manifest_path), rebuild_hint=rebuild,
                              batch_size=int(model_spec.get("batch_size", 32)), num_workers=num_workers,
                              device=device, max_failed=max_failed, amp=amp, jpeg_draft=jpeg_draft,
                              channels_last=channels_last, progress_file=progress_file, invert=invert)
