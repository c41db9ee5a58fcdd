import numpy as np
import pandas as pd
import pytest

from medprobe.errors import StoreError
from medprobe.metrics import Trustworthiness, knn_accuracy, layout_knn_accuracy, silhouette, subsample
from medprobe.plots import marker_style, plot_umap_grid, summarize_layout_metrics
from medprobe.store import write_embeddings
from medprobe.umap_sweep import (effective_neighbors, fuzzy_graph, layouts_from_graph, nearest_neighbors,
                                 read_layouts, run_sweep, sweep_layouts)

ATTRS = {"medprobe_version": "0", "model_id": "m", "feature_point": "f", "weights": {}, "preprocessing": {},
         "dataset_id": "d", "manifest_sha256": "x", "class_names": ["a", "b", "c"], "device": "cpu",
         "dtype": "float32", "created_utc": "t"}


def blobs(n=240, dim=16, classes=3, spread=6.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centers = rng.normal(size=(classes, dim)) * spread
    return (centers[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def test_neighbors_are_clipped_to_n_minus_1():
    grid = [3, 5, 10, 15, 25, 50, 100, 200, 500, 1000]
    assert effective_neighbors(grid, 780) == [3, 5, 10, 15, 25, 50, 100, 200, 500, 779]
    assert effective_neighbors([3, 1000], 40) == [3, 39]
    with pytest.raises(StoreError):
        effective_neighbors([3], 2)


def test_exact_knn_matches_brute_force_and_puts_self_first():
    from sklearn.metrics import pairwise_distances

    features, _ = blobs(n=150)
    features[7] = features[3]  # an exact duplicate: both still list themselves first
    indices, dists = nearest_neighbors(features, 12, block_bytes=150 * 4 * 40)  # several blocks
    full = pairwise_distances(features, metric="cosine")
    assert (indices[:, 0] == np.arange(150)).all() and (dists[:, 0] == 0).all()
    assert indices[3, 1] == 7 and indices[7, 1] == 3
    expected = np.sort(full, axis=1)[:, 1:12]
    np.testing.assert_allclose(np.sort(dists[:, 1:], axis=1), expected, atol=1e-5)
    e_idx, e_dist = nearest_neighbors(features, 5, metric="euclidean")
    np.testing.assert_allclose(e_dist[:, 1:], np.sort(pairwise_distances(features), axis=1)[:, 1:5], rtol=1e-4)


def test_reused_graph_equals_umap_learn_with_the_same_knn():
    import umap

    features, _ = blobs(n=200)
    knn_i, knn_d = nearest_neighbors(features, 30)
    graph = fuzzy_graph(features, knn_i, knn_d, 15, seed=7)
    ours = layouts_from_graph(graph, [0.1, 0.75], optimizer="umap-learn")
    for layout, min_dist in zip(ours, (0.1, 0.75)):
        reference = umap.UMAP(n_neighbors=15, min_dist=min_dist, metric="cosine", random_state=7,
                              precomputed_knn=(knn_i[:, :15], knn_d[:, :15], None)).fit_transform(features)
        np.testing.assert_array_equal(layout, reference)


def test_medprobe_optimizer_keeps_layout_quality():
    features, labels = blobs(n=400, spread=3.0)
    knn_i, knn_d = nearest_neighbors(features, 30)
    graph = fuzzy_graph(features, knn_i, knn_d, 15, seed=1)
    trust = Trustworthiness(features, np.arange(400), n_neighbors=10)
    ours = layouts_from_graph(graph, [0.1, 0.5], "medprobe")
    reference = layouts_from_graph(graph, [0.1, 0.5], "umap-learn")
    for mine, theirs in zip(ours, reference):
        assert abs(trust(mine) - trust(theirs)) < 0.01
        assert layout_knn_accuracy(mine, labels) > 0.95


def test_lockstep_layouts_equal_one_at_a_time():
    features, _ = blobs(n=150)
    knn_i, knn_d = nearest_neighbors(features, 20)
    graph = fuzzy_graph(features, knn_i, knn_d, 10, seed=2)
    together = layouts_from_graph(graph, [0.1, 0.5, 1.0], "medprobe")
    for layout, min_dist in zip(together, (0.1, 0.5, 1.0)):
        np.testing.assert_array_equal(layout, layouts_from_graph(graph, [min_dist], "medprobe")[0])


def test_sweep_is_deterministic_whatever_the_workers():
    features, _ = blobs(n=120)
    a, eff, _ = sweep_layouts(features, [5, 500], [0.1, 0.5], seed=3, threads=2)
    b, _, _ = sweep_layouts(features, [5, 500], [0.1, 0.5], seed=3, threads=1)
    np.testing.assert_array_equal(a, b)
    assert eff == [5, 119]
    assert not np.array_equal(a[0, 0], a[0, 1]) and not np.array_equal(a[0, 0], a[1, 0])


def test_run_sweep_writes_layouts_and_metrics(tmp_path):
    features, labels = blobs(n=90)
    features[5] = np.nan  # a failed image
    path = write_embeddings(tmp_path / "e.h5", features, labels, [str(i) for i in range(90)], [""] * 90, ATTRS)
    sweep = run_sweep(path, tmp_path / "layouts.h5", tmp_path / "metrics.tsv", n_neighbors=[5, 100],
                      min_dist=[0.1, 0.5], seed=1, threads=1)
    stored = read_layouts(tmp_path / "layouts.h5")
    assert stored.layouts.shape == (2, 2, 89, 2)
    np.testing.assert_array_equal(stored.layouts, sweep.layouts)
    assert stored.n_neighbors_effective == [5, 88] and stored.attrs["clipped"] == {"100": 88}
    assert "5" not in set(stored.sample_id) and stored.attrs["seed"] == 1 and stored.attrs["optimizer"] == "medprobe"
    metrics = pd.read_csv(tmp_path / "metrics.tsv", sep="\t")
    assert len(metrics) == 5 and (metrics.space == "features").sum() == 1
    umap_rows = metrics[metrics.space == "umap"]
    assert umap_rows.trustworthiness.between(0.5, 1).all() and umap_rows.knn_accuracy.between(0, 1).all()
    assert umap_rows.n_neighbors_effective.tolist() == [5, 5, 88, 88]
    png = plot_umap_grid(stored, tmp_path / "grid.png")
    assert png.stat().st_size > 10_000
    summary = summarize_layout_metrics([metrics], {"m": "Model M"})
    assert summary.loc["Model M", "UMAP trust (best)"] == umap_rows.trustworthiness.max()


def test_trustworthiness_equals_scikit_learn():
    from sklearn.manifold import trustworthiness

    features, _ = blobs(n=150, spread=1.0)
    layout = features[:, :2] + np.random.default_rng(2).normal(size=(150, 2)) * 0.5
    ours = Trustworthiness(features, np.arange(150), n_neighbors=7, metric="cosine")
    assert ours(layout) == pytest.approx(trustworthiness(features, layout, n_neighbors=7, metric="cosine"),
                                         abs=1e-12)


def test_metrics_on_constructed_cases():
    features, labels = blobs(n=300, spread=50.0)
    neighbours = nearest_neighbors(features, 11)[0][:, 1:]
    assert knn_accuracy(neighbours, labels) == 1.0
    assert silhouette(features, labels, "cosine") > 0.9
    shuffled = np.random.default_rng(0).permutation(labels)
    assert abs(knn_accuracy(neighbours, shuffled) - 1 / 3) < 0.1
    assert abs(silhouette(features, shuffled, "cosine")) < 0.05
    layout = np.concatenate([np.zeros((150, 2)), np.full((150, 2), 100.0)]) + np.random.default_rng(1).normal(
        size=(300, 2))
    two = np.repeat([0, 1], 150)
    assert layout_knn_accuracy(layout, two) == 1.0 and silhouette(layout, two) > 0.95
    assert len(subsample(10_000, 3000)) == 3000 and (subsample(50, 3000) == np.arange(50)).all()


def test_marker_style_scales_with_n():
    small, big = marker_style(100), marker_style(28_000)
    assert small[0] > big[0] and small[1] > big[1]
