import numpy as np
import pytest

from medprobe.errors import StoreError
from medprobe.plots import marker_style, plot_umap_grid
from medprobe.store import write_embeddings
from medprobe.umap_sweep import effective_neighbors, read_layouts, run_sweep, sweep_layouts

ATTRS = {"medprobe_version": "0", "model_id": "m", "feature_point": "f", "weights": {}, "preprocessing": {},
         "dataset_id": "d", "manifest_sha256": "x", "class_names": ["a", "b"], "device": "cpu", "dtype": "float32",
         "created_utc": "t"}


def test_neighbors_are_clipped_to_n_minus_1():
    assert effective_neighbors([3, 5, 500, 1000], 780) == [3, 5, 500, 779]
    assert effective_neighbors([3, 1000], 40) == [3, 39]
    with pytest.raises(StoreError):
        effective_neighbors([3], 2)


def test_sweep_is_deterministic_and_records_clipping(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    features = rng.normal(size=(40, 8)) + labels[:, None] * 5
    features[5] = np.nan  # a failed image
    path = write_embeddings(tmp_path / "e.h5", features, labels, [str(i) for i in range(40)], [""] * 40, ATTRS)
    a = run_sweep(path, tmp_path / "a.h5", n_neighbors=[5, 100], min_dist=[0.1, 0.5], seed=1)
    b = run_sweep(path, tmp_path / "b.h5", n_neighbors=[5, 100], min_dist=[0.1, 0.5], seed=1)
    np.testing.assert_array_equal(a.layouts, b.layouts)
    stored = read_layouts(tmp_path / "a.h5")
    assert stored.layouts.shape == (2, 2, 39, 2)
    assert stored.n_neighbors_effective == [5, 38] and stored.attrs["clipped"] == {"100": 38}
    assert "5" not in set(stored.sample_id) and stored.attrs["seed"] == 1
    assert not np.array_equal(stored.layouts[0, 0], stored.layouts[0, 1])
    png = plot_umap_grid(stored, tmp_path / "grid.png")
    assert png.stat().st_size > 10_000


def test_settings_that_clip_to_the_same_k_share_one_fit():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(30, 5))
    layouts, effective = sweep_layouts(features, [200, 500], [0.25], seed=3)
    assert effective == [29, 29]
    np.testing.assert_array_equal(layouts[0, 0], layouts[1, 0])


def test_marker_style_scales_with_n():
    small, big = marker_style(100), marker_style(28_000)
    assert small[0] > big[0] and small[1] > big[1]
