import numpy as np
import pandas as pd
import pytest

from medprobe.errors import DatasetError
from medprobe.split import make_split, straddling_duplicates


def toy(n_per_class=(50, 30, 20)):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    ids = [f"s{i:03d}" for i in range(len(labels))]
    return ids, labels


def test_holdout_and_folds_are_disjoint_and_cover_everything():
    ids, labels = toy()
    split = make_split(ids, labels, seed=3)
    holdout = split[split.partition == "holdout"]
    train = split[split.partition == "train"]
    assert len(holdout) == 20 and len(train) == 80
    assert (holdout.fold == -1).all()
    assert sorted(train.fold.unique()) == [0, 1, 2, 3, 4]
    assert set(holdout.sample_id).isdisjoint(train.sample_id)
    assert train.groupby("fold").size().tolist() == [16] * 5


def test_stratified():
    ids, labels = toy()
    split = make_split(ids, labels, seed=1)
    holdout = split[split.partition == "holdout"]
    assert holdout.label.value_counts().sort_index().tolist() == [10, 6, 4]
    for _, fold in split[split.fold >= 0].groupby("fold"):
        counts = fold.label.value_counts().sort_index().to_numpy()
        assert (np.abs(counts - np.array([40, 24, 16]) / 5) < 1).all()  # 8, 4.8, 3.2 per fold


def test_deterministic_for_a_seed_and_different_across_seeds():
    ids, labels = toy()
    a = make_split(ids, labels, seed=7)
    b = make_split(ids, labels, seed=7)
    c = make_split(ids, labels, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.partition.equals(c.partition)


def test_group_aware_keeps_each_group_on_one_side():
    ids, labels = toy((60, 60))
    groups = [f"patient{i // 4}" for i in range(len(labels))]  # 4 images per patient, one class each
    split = make_split(ids, labels, groups, seed=0, group_aware=True)
    assert split.groupby("group")["partition"].nunique().max() == 1
    train = split[split.partition == "train"]
    assert train.groupby("group")["fold"].nunique().max() == 1
    with pytest.raises(DatasetError, match="no group id"):
        make_split(ids, labels, None, group_aware=True)


def test_too_small_classes_stop_the_split_by_name():
    ids, labels = toy((40, 1))
    with pytest.raises(DatasetError, match=r"needs 2 per class; rare: 1\). Add images.*ignore_classes"):
        make_split(ids, labels, class_names=["common", "rare"], dataset_id="d")
    ids, labels = toy((40, 5))  # 4 training images for 5 folds: a fold model would never see the class
    with pytest.raises(DatasetError, match=r"rare: 5 images, 1 in the hold-out, 4 for 5-fold CV.*lower split.n_folds"):
        make_split(ids, labels, class_names={0: "common", 1: "rare"}, dataset_id="d")
    split = make_split(ids, labels, n_folds=4, class_names={0: "common", 1: "rare"})
    assert (split.partition == "holdout").sum() == 9 and set(split.fold[split.fold >= 0]) == {0, 1, 2, 3}


def test_straddling_duplicates_are_found():
    manifest = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "sha256": ["x", "x", "y", "y"]})
    split = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "partition": ["train", "holdout", "train", "train"]})
    leaks = straddling_duplicates(manifest, split)
    assert set(leaks.sample_id) == {"a", "b"}
