"""The HDF5 embedding file, read and written only here.

results/embeddings/{dataset}/{model}.h5
    /features   float32 (N, D), chunked by rows
    /labels     int64 (N,)
    /sample_id  utf-8 strings (N,)   same order as the manifest
    /group      utf-8 strings (N,)   empty where the dataset has no groups
    /columns/*  utf-8 strings (N,)   optional per-row facts (the typographic probe: image_id, word_set, word)
    attrs: medprobe_version, model_id, feature_point, weights (JSON), preprocessing (JSON), dataset_id,
           manifest_sha256, class_names (JSON), torch_version, open_clip_version, timm_version, device, dtype,
           created_utc, n_failed, failed (JSON list of sample ids whose image failed; their rows are NaN),
           features_sha256 (sha256 of /features as little-endian float32, row-major)

Writing goes to `<name>.partial.h5` beside the target, with /features allocated in full when the file is created (a
full disk fails there, not halfway); the `rows_done` attribute advances after each flushed batch, so an interrupted
extraction resumes where it stopped. Every write and flush is checked. Before the finished file is renamed into place
it is read back: every row written, NaN rows exactly the failed images, and the checksum of /features stored;
every reader verifies that checksum, so a file changed or damaged after it was written is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from medprobe.errors import StoreError

log = logging.getLogger(__name__)

JSON_ATTRS = ("weights", "preprocessing", "class_names", "failed", "overlay")
CHECKSUM_ATTR = "features_sha256"
REQUIRED_ATTRS = ("medprobe_version", "model_id", "feature_point", "weights", "preprocessing", "dataset_id",
                  "manifest_sha256", "class_names", "device", "dtype", "created_utc", "n_failed")
STRING = h5py.string_dtype(encoding="utf-8")


@dataclass
class Embeddings:
    features: np.ndarray
    labels: np.ndarray
    sample_id: np.ndarray
    group: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)   # /columns/<name>: extra per-row strings

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs["class_names"])

    def valid_rows(self) -> np.ndarray:
        """Rows whose features are finite (a failed image leaves a NaN row)."""
        return np.isfinite(self.features).all(axis=1)


def partial_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name.removesuffix(".h5") + ".partial.h5")


def _encode_attr(key: str, value: Any) -> Any:
    if key in JSON_ATTRS:
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str):
        return str(value)  # a str subclass (torch's TorchVersion) would become a numpy unicode array
    return value


def _decode_attr(key: str, value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if key in JSON_ATTRS and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def resume_key(attrs: Mapping[str, Any], n: int, dim: int) -> str:
    """What must be equal for a partial file to be continued rather than restarted."""
    fields = {k: attrs.get(k) for k in ("model_id", "feature_point", "weights", "preprocessing", "dataset_id",
                                         "manifest_sha256", "dtype", "jpeg_draft", "overlay")}
    fields.update(n=n, dim=dim)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


class EmbeddingWriter:
    """Streams features into a resumable partial file; `finish()` renames it to the target."""

    def __init__(self, path: str | Path, *, labels: Sequence[int], sample_id: Sequence[str], group: Sequence[str],
                 dim: int, attrs: Mapping[str, Any], chunk_rows: int = 256,
                 columns: Mapping[str, Sequence[str]] | None = None):
        self.path = Path(path)
        self.columns = {name: list(values) for name, values in (columns or {}).items()}
        self.partial = partial_path(self.path)
        self.n = len(labels)
        self.dim = int(dim)
        self.attrs = dict(attrs)
        self.key = resume_key(self.attrs, self.n, self.dim)
        self.rows_done = 0
        self.failed: list[str] = []
        self._file = self._open_or_resume(labels, sample_id, group, chunk_rows)

    def _open_or_resume(self, labels, sample_id, group, chunk_rows) -> h5py.File:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            try:
                handle = h5py.File(self.partial, "r+")
                if handle.attrs.get("resume_key") == self.key:
                    self.rows_done = int(handle.attrs["rows_done"])
                    self.failed = _decode_attr("failed", handle.attrs.get("failed", "[]"))
                    log.info("resuming %s at row %d of %d", self.partial, self.rows_done, self.n)
                    return handle
                handle.close()
                log.warning("%s was written for other settings (model, weights, manifest or preprocessing "
                            "changed); starting over", self.partial)
            except (OSError, KeyError) as err:
                log.warning("%s is unreadable (%s), probably cut off mid-write; starting over", self.partial, err)
            self.partial.unlink()
        handle = h5py.File(self.partial, "w")
        try:
            rows = max(1, min(chunk_rows, self.n))
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # the whole array on disk now: no ENOSPC halfway
            handle.create_dataset("features", shape=(self.n, self.dim), dtype=np.float32,
                                  chunks=(rows, self.dim) if self.n else None, fillvalue=np.nan, dcpl=dcpl)
            handle.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
            handle.create_dataset("sample_id", data=np.asarray(list(sample_id), dtype=object), dtype=STRING)
            handle.create_dataset("group", data=np.asarray(list(group), dtype=object), dtype=STRING)
            for name, values in self.columns.items():
                handle.create_dataset(f"columns/{name}", data=np.asarray(values, dtype=object), dtype=STRING)
            handle.attrs["resume_key"] = self.key
            handle.attrs["rows_done"] = 0
            handle.attrs["failed"] = "[]"
            handle.flush()
        except (OSError, RuntimeError, ValueError) as err:
            _close_quietly(handle)
            self.partial.unlink(missing_ok=True)
            raise StoreError(self._write_failed(err, f"creating it ({self.n} x {self.dim} float32, "
                                                     f"{self.n * self.dim * 4 / 1e6:.1f} MB)")) from err
        return handle

    def _write_failed(self, err: BaseException, what: str) -> str:
        free = _free_bytes(self.partial.parent)
        return (f"{self.partial}: writing failed while {what}: {err}. Free space in {self.partial.parent}: "
                f"{'unknown' if free is None else f'{free / 1e6:.1f} MB'}. Nothing was published; free some space "
                f"(or point the workflow's results at a larger disk) and rerun: the job resumes from the last row "
                f"that was safely written.")

    def write(self, start: int, features: np.ndarray, failed_ids: Sequence[str] = ()) -> None:
        """Write rows [start, start + len(features)); only in order, so `rows_done` marks a clean prefix."""
        if start != self.rows_done:
            raise StoreError(f"{self.partial}: rows must be written in order (expected row {self.rows_done}, "
                             f"got {start})")
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise StoreError(f"{self.partial}: features of shape {features.shape}, expected (*, {self.dim})")
        end = start + len(features)
        failed = [*self.failed, *failed_ids]
        try:
            self._file["features"][start:end] = features
            self._file.flush()  # the rows first: rows_done never runs ahead of rows on disk
            self._file.attrs["failed"] = json.dumps(failed)
            self._file.attrs["rows_done"] = end
            self._file.flush()
        except (OSError, RuntimeError, ValueError) as err:
            raise StoreError(self._write_failed(err, f"writing rows {start}..{end - 1}")) from err
        self.failed = failed
        self.rows_done = end

    def finish(self, extra_attrs: Mapping[str, Any] | None = None) -> Path:
        """Store the attrs, close, read the file back and verify it, store the checksum, rename it into place."""
        if self.rows_done != self.n:
            raise StoreError(f"{self.partial}: finish() after {self.rows_done} of {self.n} rows")
        attrs = {**self.attrs, **(extra_attrs or {}), "n_failed": len(self.failed), "failed": self.failed}
        try:
            for key, value in attrs.items():
                self._file.attrs[key] = _encode_attr(key, value)
            for key in ("resume_key", "rows_done"):
                del self._file.attrs[key]
            self._file.flush()
            self._file.close()
        except (OSError, RuntimeError, ValueError) as err:
            raise StoreError(self._write_failed(err, "storing its attributes")) from err
        try:
            checksum = verify_written(self.partial, self.failed)
            with h5py.File(self.partial, "r+") as handle:
                handle.attrs[CHECKSUM_ATTR] = checksum
            with h5py.File(self.partial, "r") as handle:
                if handle.attrs.get(CHECKSUM_ATTR) != checksum:
                    raise StoreError(f"{self.partial}: the checksum did not read back")
        except StoreError as err:
            self.partial.unlink(missing_ok=True)
            raise StoreError(f"{err}. The partial file was deleted; rerun the embed rule to extract again.") from err
        except (OSError, RuntimeError, ValueError) as err:
            raise StoreError(self._write_failed(err, "storing the checksum")) from err
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        _close_quietly(self._file)


def _close_quietly(handle: h5py.File) -> None:
    """Close after a failed write: the failure is already being raised; a second one from close would hide it."""
    try:
        if not handle.id.valid:
            return
        name = handle.filename  # before close: a failed close leaves an id that must not be touched again
        handle.close()
    except (OSError, RuntimeError, ValueError) as err:
        log.warning("closing %s after a failed write: %s", name, err)


def _free_bytes(folder: Path) -> int | None:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def verify_written(path: Path, failed: Sequence[str]) -> str:
    """Read a just-written file back: every row present, NaN rows exactly the failed images; returns the checksum."""
    with h5py.File(path, "r") as handle:
        features = handle["features"]
        sample_ids = handle["sample_id"].asstr()[...]
        n = features.shape[0]
        if len(sample_ids) != n or handle["labels"].shape[0] != n:
            raise StoreError(f"{path}: {n} feature rows but {len(sample_ids)} sample ids and "
                             f"{handle['labels'].shape[0]} labels")
        nan_rows = set()
        digest = hashlib.sha256()
        for start in range(0, n, 4096):
            block = np.ascontiguousarray(features[start:start + 4096], dtype="<f4")
            digest.update(block.tobytes())
            nan_rows.update(int(i) + start for i in np.flatnonzero(~np.isfinite(block).all(axis=1)))
        failed = set(failed)
        expected = {i for i, s in enumerate(sample_ids) if s in failed}
        if nan_rows != expected:
            unexpected = sorted(nan_rows - expected)
            raise StoreError(f"{path}: read back with {len(nan_rows)} row(s) without finite features but "
                             f"{len(expected)} failed image(s) (first unexpected rows: {unexpected[:5]}); the "
                             f"write did not reach the disk (disk full or I/O error?)")
        return digest.hexdigest()


def write_embeddings(path: str | Path, features: np.ndarray, labels: Sequence[int], sample_id: Sequence[str],
                     group: Sequence[str], attrs: Mapping[str, Any]) -> Path:
    """Write a whole embedding file at once (atomically); rows that are not finite are recorded as failed images."""
    features = np.asarray(features, dtype=np.float32)
    partial = partial_path(path)
    if partial.exists():
        partial.unlink()
    writer = EmbeddingWriter(path, labels=labels, sample_id=sample_id, group=group, dim=features.shape[1],
                             attrs=attrs)
    failed = [s for s, ok in zip(sample_id, np.isfinite(features).all(axis=1)) if not ok]  # NaN rows: failed images
    try:
        writer.write(0, features, failed)
        return writer.finish()
    finally:
        writer.close()


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The provenance attrs of an embedding file, without its arrays."""
    try:
        with h5py.File(path, "r") as handle:
            return {k: _decode_attr(k, v) for k, v in handle.attrs.items()}
    except OSError as err:
        raise StoreError(f"{path}: unreadable HDF5 file ({err}); delete it and rerun the embed rule") from err


def read_embeddings(path: str | Path) -> Embeddings:
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: embedding file not found; run the embed rule for it")
    try:
        with h5py.File(path, "r") as handle:
            missing = [k for k in ("features", "labels", "sample_id", "group") if k not in handle]
            missing += [k for k in REQUIRED_ATTRS if k not in handle.attrs]
            if missing:
                raise StoreError(f"{path}: not a medprobe embedding file (missing {', '.join(missing)}); "
                                 f"delete it and rerun the embed rule")
            emb = Embeddings(
                features=handle["features"][...],
                labels=handle["labels"][...],
                sample_id=handle["sample_id"].asstr()[...],
                group=handle["group"].asstr()[...],
                attrs={k: _decode_attr(k, v) for k, v in handle.attrs.items()},
                columns={name: handle["columns"][name].asstr()[...] for name in handle.get("columns", {})},
            )
    except OSError as err:
        raise StoreError(f"{path}: unreadable HDF5 file ({err}); delete it and rerun the embed rule") from err
    verify_checksum(path, emb)
    return emb


def verify_checksum(path: str | Path, emb: Embeddings) -> None:
    """The features must be the ones written: a file edited or damaged since is refused."""
    stored = emb.attrs.get(CHECKSUM_ATTR)
    if stored is None:
        raise StoreError(f"{path}: no {CHECKSUM_ATTR} attribute (written by medprobe "
                         f"{emb.attrs.get('medprobe_version', '?')}, before checksums, or not by medprobe); its "
                         f"features cannot be verified. Delete it and rerun the embed rule.")
    found = hashlib.sha256(np.ascontiguousarray(emb.features, dtype="<f4").tobytes()).hexdigest()
    if found != stored:
        raise StoreError(f"{path}: /features does not match the checksum written with it ({stored[:12]}..., now "
                         f"{found[:12]}...): the file was changed or damaged after embedding. Delete it and rerun "
                         f"the embed rule; if it happens again, check the disk.")
