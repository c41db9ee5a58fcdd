import os

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
    features[9] = np.nan  # the failed image's row
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


@pytest.fixture
def small_disk(tmp_path):
    """A 1.6 MB tmpfs (root only, where mounting is allowed)."""
    import subprocess

    folder = tmp_path / "small_disk"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission); the patched-writer test covers it")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)  # lazy: a failed h5py close may keep a handle


def test_full_disk_fails_before_any_row_and_publishes_nothing(small_disk):
    features, labels, ids, groups = make(n=600, dim=1024)
    target = small_disk / "e.h5"
    with pytest.raises(StoreError, match=r"No space left on device.*Free space in .*Nothing was published"):
        write_embeddings(target, features, labels, ids, groups, ATTRS)
    assert not target.exists() and not partial_path(target).exists()


def test_full_disk_midway_is_raised_and_nothing_published(small_disk):
    features, labels, ids, groups = make(n=300, dim=1024)   # 1.2 MB of features: fits, allocated up front
    target = small_disk / "e.h5"
    writer = EmbeddingWriter(target, labels=labels, sample_id=ids, group=groups, dim=1024, attrs=ATTRS,
                             chunk_rows=50)
    writer.write(0, features[:100])
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)   # another process fills the disk
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    os.close(fd)
    with pytest.raises(StoreError, match="No space left on device.*Nothing was published"):
        for start in range(100, 300, 50):   # the failed-image list grows the file's metadata
            writer.write(start, features[start:start + 50], failed_ids=[f"x{start}-{i}" for i in range(300)])
        writer.finish()
    writer.close()
    assert not target.exists()


def test_a_failing_write_is_raised_not_swallowed(tmp_path, monkeypatch):
    features, labels, ids, groups = make(n=40)
    target = tmp_path / "e.h5"
    writer = EmbeddingWriter(target, labels=labels, sample_id=ids, group=groups, dim=6, attrs=ATTRS)
    writer.write(0, features[:10])
    original = h5py.File.flush

    def enospc(self):
        raise RuntimeError("Unable to synchronously flush file (file write failed: errno = 28, error message = "
                           "'No space left on device')")

    monkeypatch.setattr(h5py.File, "flush", enospc)
    with pytest.raises(StoreError, match=r"writing rows 10\.\.19: .*No space left.*Nothing was published"):
        writer.write(10, features[10:20])
    assert writer.rows_done == 10
    monkeypatch.setattr(h5py.File, "flush", original)
    writer.close()
    assert not target.exists()


def test_rows_lost_on_the_way_to_disk_are_caught_before_publishing(tmp_path, monkeypatch):
    features, labels, ids, groups = make(n=40)
    target = tmp_path / "e.h5"
    writer = EmbeddingWriter(target, labels=labels, sample_id=ids, group=groups, dim=6, attrs=ATTRS)
    writer.write(0, features[:20])
    original = h5py.Dataset.__setitem__
    monkeypatch.setattr(h5py.Dataset, "__setitem__", lambda self, key, value: None)  # a write that never lands
    writer.write(20, features[20:])
    monkeypatch.setattr(h5py.Dataset, "__setitem__", original)
    with pytest.raises(StoreError, match=r"20 row\(s\) without finite features but 0 failed image\(s\).*"
                                         r"partial file was deleted"):
        writer.finish()
    writer.close()
    assert not target.exists() and not partial_path(target).exists()


def test_features_changed_after_writing_are_refused(tmp_path):
    features, labels, ids, groups = make()
    path = write_embeddings(tmp_path / "e.h5", features, labels, ids, groups, ATTRS)
    with h5py.File(path, "r+") as handle:
        handle["features"][3] = np.full(6, 1e3, dtype=np.float32)   # finite garbage
    with pytest.raises(StoreError, match="does not match the checksum written with it.*rerun the embed rule"):
        read_embeddings(path)
    with h5py.File(path, "r+") as handle:
        del handle.attrs["features_sha256"]
    with pytest.raises(StoreError, match="no features_sha256 attribute"):
        read_embeddings(path)
