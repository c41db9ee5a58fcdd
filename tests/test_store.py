import h5py
import numpy as np
import pytest

from medprobe.errors import StoreError
from medprobe.store import EmbeddingWriter, partial_path, read_embeddings, write_embeddings

ATTRS = {"medprobe_version": "0", "model_id": "m", "feature_point": "pooled", "weights": {"source": "random", "seed": 0},
         "preprocessing": {"size": 224}, "dataset_id": "d", "manifest_sha256": "abc", "class_names": ["a", "b"],
         "device": "cpu", "dtype": "float32", "created_utc": "2026-01-01T00:00:00+00:00"}


def make(n=10, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)).astype(np.float32), rng.integers(0, 2, n),
            [f"id ü {i}" for i in range(n)], [f"g{i % 3}" for i in range(n)])


def test_round_trip(tmp_path):
    features, labels, ids, groups = make()
    path = write_embeddings(tmp_path / "e.h5", features, labels, ids, groups, ATTRS)
    emb = read_embeddings(path)
    np.testing.assert_array_equal(emb.features, features)
    np.testing.assert_array_equal(emb.labels, labels)
    assert emb.labels.dtype == np.int64 and emb.features.dtype == np.float32
    assert list(emb.sample_id) == ids and list(emb.group) == groups
    assert emb.class_names == ["a", "b"] and emb.attrs["weights"] == {"source": "random", "seed": 0}
    assert emb.attrs["n_failed"] == 0 and emb.attrs["failed"] == []
    assert not partial_path(path).exists()
    with h5py.File(path) as handle:
        assert handle["features"].chunks is not None
        assert "rows_done" not in handle.attrs


def test_interrupted_writer_resumes_and_matches_a_clean_run(tmp_path):
    features, labels, ids, groups = make(n=25)
    target = tmp_path / "e.h5"
    writer = EmbeddingWriter(target, labels=labels, sample_id=ids, group=groups, dim=6, attrs=ATTRS, chunk_rows=4)
    writer.write(0, features[:8])
    writer.write(8, features[8:12], failed_ids=["id ü 9"])
    writer.close()  # the job dies here
    assert not target.exists() and partial_path(target).exists()

    resumed = EmbeddingWriter(target, labels=labels, sample_id=ids, group=groups, dim=6, attrs=ATTRS, chunk_rows=4)
    assert resumed.rows_done == 12 and resumed.failed == ["id ü 9"]
    with pytest.raises(StoreError, match="in order"):
        resumed.write(0, features[:4])
    resumed.write(12, features[12:])
    resumed.finish()
    emb = read_embeddings(target)
    np.testing.assert_array_equal(emb.features, features)
    assert emb.attrs["n_failed"] == 1


def test_partial_from_other_settings_is_restarted(tmp_path):
    features, labels, ids, groups = make()
    target = tmp_path / "e.h5"
    writer = EmbeddingWriter(target, labels=labels, sample_id=ids, group=groups, dim=6, attrs=ATTRS)
    writer.write(0, features[:5])
    writer.close()
    other = EmbeddingWriter(target, labels=labels, sample_id=ids, group=groups, dim=6,
                            attrs={**ATTRS, "manifest_sha256": "changed"})
    assert other.rows_done == 0
    other.close()


def test_corrupt_partial_is_restarted(tmp_path):
    features, labels, ids, groups = make()
    target = tmp_path / "e.h5"
    partial_path(target).write_bytes(b"\x89HDF garbage")
    writer = EmbeddingWriter(target, labels=labels, sample_id=ids, group=groups, dim=6, attrs=ATTRS)
    assert writer.rows_done == 0
    writer.write(0, features)
    writer.finish()
    np.testing.assert_array_equal(read_embeddings(target).features, features)


def test_reading_a_foreign_file_says_what_to_do(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as handle:
        handle["features"] = np.zeros((2, 2))
    with pytest.raises(StoreError, match="rerun the embed rule"):
        read_embeddings(path)
    with pytest.raises(StoreError, match="not found"):
        read_embeddings(tmp_path / "missing.h5")
