import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import save_image
from medprobe.errors import DatasetError
from medprobe.manifest import (MANIFEST_COLUMNS, build_manifest, count_mismatches, make_dataset_manifest,
                               read_manifest)


@pytest.fixture
def messy_folder(tmp_path):
    """Three classes with every kind of trouble a real release has."""
    root = tmp_path / "data"
    for i in range(3):
        save_image(root / "cat" / f"c{i}.jpg", seed=i)
        save_image(root / "dog" / f"d{i}.png", seed=10 + i)
    # a truncated JPEG
    good = save_image(tmp_path / "full.jpg", seed=99, size=(256, 256))
    data = good.read_bytes()
    (root / "cat" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    # a 16-bit PNG and a CMYK JPEG: valid samples
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 10).save(root / "dog" / "sixteen.png")
    save_image(root / "dog" / "cmyk.jpg", seed=5, mode="CMYK", fmt="JPEG")
    # a non-image file, an exact duplicate within a class, one across classes, an empty class folder
    (root / "dog" / "notes.txt").write_text("not an image")
    shutil.copyfile(root / "cat" / "c0.jpg", root / "cat" / "zz_copy_of_c0.jpg")
    shutil.copyfile(root / "cat" / "c1.jpg", root / "dog" / "c1-again.jpg")
    (root / "empty").mkdir()
    (root / "README.txt").write_text("stray")
    return root


def issue_kinds(manifest):
    names = manifest.issues["path"].str.rstrip("/").str.rsplit("/", n=1).str[-1]
    return dict(zip(names, manifest.issues["kind"]))


def test_every_problem_is_listed_and_good_files_kept(messy_folder):
    manifest = build_manifest(messy_folder, threads=2, dataset_id="pets")
    kinds = issue_kinds(manifest)
    assert kinds["truncated.jpg"] == "unreadable"
    assert kinds["notes.txt"] == "not_an_image"
    assert kinds["zz_copy_of_c0.jpg"] == "duplicate"
    assert kinds["c1-again.jpg"] == "duplicate_conflicting_label"
    assert kinds["empty"] == "empty_class"
    assert kinds["README.txt"] == "outside_class_folder"
    samples = manifest.samples
    assert list(samples.columns) == MANIFEST_COLUMNS
    assert manifest.class_names == ["cat", "dog"]
    assert set(samples["sample_id"]) == {"cat/c0.jpg", "cat/c1.jpg", "cat/c2.jpg", "cat/zz_copy_of_c0.jpg",
                                         "dog/d0.png", "dog/d1.png", "dog/d2.png", "dog/sixteen.png",
                                         "dog/cmyk.jpg", "dog/c1-again.jpg"}
    modes = dict(zip(samples["sample_id"], samples["mode"]))
    assert modes["dog/sixteen.png"].startswith("I") and modes["dog/cmyk.jpg"] == "CMYK"
    assert (samples.loc[samples.label_name == "dog", "label"] == 1).all()
    assert samples.loc[samples.sample_id == "cat/c0.jpg", ["width", "height"]].values.tolist() == [[40, 32]]


def test_duplicates_can_be_dropped(messy_folder):
    manifest = build_manifest(messy_folder, duplicates="drop")
    assert "cat/zz_copy_of_c0.jpg" not in set(manifest.samples["sample_id"])
    assert manifest.issues.loc[manifest.issues.kind == "duplicate", "detail"].str.endswith("dropped").all()


def test_registry_classes_fix_label_order_and_flag_other_folders(messy_folder):
    manifest = build_manifest(messy_folder, classes=["dog", "cat"])
    assert manifest.class_names == ["dog", "cat"]
    assert (manifest.samples.loc[manifest.samples.label_name == "dog", "label"] == 0).all()
    assert issue_kinds(manifest)["empty"] == "empty_folder"


def test_exclude_patterns_are_listed(tmp_path):
    save_image(tmp_path / "benign" / "benign (1).png", seed=1)
    save_image(tmp_path / "benign" / "benign (1)_mask.png", seed=2)
    save_image(tmp_path / "normal" / "normal (1).png", seed=3)
    manifest = build_manifest(tmp_path, exclude=["*_mask*.png"])
    assert len(manifest.samples) == 2
    assert issue_kinds(manifest)["benign (1)_mask.png"] == "excluded"


def test_count_mismatch_names_expected_and_found(messy_folder, tmp_path):
    spec = {"adapter": "imagefolder", "classes": ["cat", "dog"], "expected": {"n": 12, "counts": {"cat": 5, "dog": 7}}}
    out, issues = tmp_path / "m.tsv", tmp_path / "m.issues.tsv"
    with pytest.raises(DatasetError) as err:
        make_dataset_manifest("pets", spec, messy_folder, out, issues)
    text = str(err.value)
    assert "expected 12 images, found 10" in text and "class 'dog': expected 7, found 6" in text
    assert "class 'cat': expected 5, found 4" in text and not out.exists()
    make_dataset_manifest("pets", spec, messy_folder, out, issues, count_mismatch="warn")
    assert len(read_manifest(out)) == 10


def test_missing_folder_says_how_to_obtain_it(tmp_path):
    spec = {"adapter": "imagefolder", "classes": ["a", "b"], "obtain": "kaggle datasets download -d x/y"}
    with pytest.raises(DatasetError, match="kaggle datasets download -d x/y"):
        make_dataset_manifest("x", spec, tmp_path / "nope", tmp_path / "m.tsv", tmp_path / "i.tsv")


def test_manifest_is_byte_identical_across_runs(messy_folder, tmp_path):
    spec = {"adapter": "imagefolder", "classes": ["cat", "dog"]}
    make_dataset_manifest("pets", spec, messy_folder, tmp_path / "a.tsv", tmp_path / "a.issues.tsv", threads=1)
    make_dataset_manifest("pets", spec, messy_folder, tmp_path / "b.tsv", tmp_path / "b.issues.tsv", threads=2)
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    assert (tmp_path / "a.issues.tsv").read_bytes() == (tmp_path / "b.issues.tsv").read_bytes()


def test_demo_subset_matches_its_registry_entry(repo):
    from medprobe.registry import load_datasets

    datasets = load_datasets(repo / "config" / "datasets.yaml")
    for dataset_id, folder in (("brainmr_demo", "brain_mr"), ("busi_demo", "busi")):
        spec = datasets[dataset_id]
        manifest = build_manifest(repo / "resources" / "demo" / folder, classes=spec["classes"],
                                  exclude=spec.get("exclude", []))
        assert count_mismatches(manifest, spec["expected"]) == []
        assert not set(manifest.issues["kind"]) - {"duplicate"}
