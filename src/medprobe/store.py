"""The HDF5 embedding file, read and written only here.

results/embeddings/{dataset}/{model}.h5
    /features   float32 (N, D), chunked by rows
    /labels     int64 (N,)
    /sample_id  utf-8 strings (N,)   same order as the manifest
    /group      utf-8 strings (N,)   empty where the dataset has no groups
    attrs: medprobe_version, model_id, feature_point, weights (JSON), preprocessing (JSON), dataset_id,
           manifest_sha256, class_names (JSON), torch_version, open_clip_version, timm_version, device, dtype,
           created_utc, n_failed, failed (JSON list of sample ids whose image failed; their rows are NaN)

Writing goes to `<name>.partial.h5` beside the target; the `rows_done` attribute advances after each flushed batch,
so an interrupted extraction resumes where it stopped, and the finished file is renamed into place atomically.
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

JSON_ATTRS = ("weights", "preprocessing", "class_names", "failed")
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
                                         "manifest_sha256", "dtype", "jpeg_draft")}
    fields.update(n=n, dim=dim)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


class EmbeddingWriter:
    """Streams features into a resumable partial file; `finish()` renames it to the target."""

    def __init__(self, path: str | Path, *, labels: Sequence[int], sample_id: Sequence[str], group: Sequence[str],
                 dim: int, attrs: Mapping[str, Any], chunk_rows: int = 256):
        self.path = Path(path)
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
        rows = max(1, min(chunk_rows, self.n))
        handle.create_dataset("features", shape=(self.n, self.dim), dtype=np.float32,
                              chunks=(rows, self.dim) if self.n else None, fillvalue=np.nan)
        handle.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        handle.create_dataset("sample_id", data=np.asarray(list(sample_id), dtype=object), dtype=STRING)
        handle.create_dataset("group", data=np.asarray(list(group), dtype=object), dtype=STRING)
        handle.attrs["resume_key"] = self.key
        handle.attrs["rows_done"] = 0
        handle.attrs["failed"] = "[]"
        handle.flush()
        return handle

    def write(self, start: int, features: np.ndarray, failed_ids: Sequence[str] = ()) -> None:
        """Write rows [start, start + len(features)); only in order, so `rows_done` marks a clean prefix."""
        if start != self.rows_done:
            raise StoreError(f"{self.partial}: rows must be written in order (expected row {self.rows_done}, "
                             f"got {start})")
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise StoreError(f"{self.partial}: features of shape {features.shape}, expected (*, {self.dim})")
        end = start + len(features)
        self._file["features"][start:end] = features
        self.failed.extend(failed_ids)
        self._file.attrs["failed"] = json.dumps(self.failed)
        self._file.attrs["rows_done"] = end
        self._file.flush()
        self.rows_done = end

    def finish(self, extra_attrs: Mapping[str, Any] | None = None) -> Path:
        if self.rows_done != self.n:
            raise StoreError(f"{self.partial}: finish() after {self.rows_done} of {self.n} rows")
        attrs = {**self.attrs, **(extra_attrs or {}), "n_failed": len(self.failed), "failed": self.failed}
        for key, value in attrs.items():
            self._file.attrs[key] = _encode_attr(key, value)
        for key in ("resume_key", "rows_done"):
            del self._file.attrs[key]
        self._file.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()


def write_embeddings(path: str | Path, features: np.ndarray, labels: Sequence[int], sample_id: Sequence[str],
                     group: Sequence[str], attrs: Mapping[str, Any]) -> Path:
    """Write a whole embedding file at once (atomically)."""
    features = np.asarray(features, dtype=np.float32)
    partial = partial_path(path)
    if partial.exists():
        partial.unlink()
    writer = EmbeddingWriter(path, labels=labels, sample_id=sample_id, group=group, dim=features.shape[1],
                             attrs=attrs)
    try:
        writer.write(0, features)
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
            return Embeddings(
                features=handle["features"][...],
                labels=handle["labels"][...],
                sample_id=handle["sample_id"].asstr()[...],
                group=handle["group"].asstr()[...],
                attrs={k: _decode_attr(k, v) for k, v in handle.attrs.items()},
            )
    except OSError as err:
        raise StoreError(f"{path}: unreadable HDF5 file ({err}); delete it and rerun the embed rule") from err
