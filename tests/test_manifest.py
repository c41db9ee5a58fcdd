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


# --- inputs that must stop the manifest job: nothing published, the message names the value and the fix -----------

def three_classes(root, per_class=6):
    for c, name in enumerate(["benign", "malignant", "normal"]):
        for i in range(per_class):
            save_image(root / name / f"{name}{i}.png", seed=100 * c + i)
    return root


def refused(spec, root, tmp_path, match):
    out, issues = tmp_path / "out" / "m.tsv", tmp_path / "out" / "m.issues.tsv"
    with pytest.raises(DatasetError, match=match):
        make_dataset_manifest("d", {"adapter": "imagefolder", **spec}, root, out, issues)
    assert not out.exists() and not issues.exists()


@pytest.mark.parametrize("trouble", ["empty folder", "missing folder"])
def test_a_configured_class_without_images_stops_the_manifest(tmp_path, trouble):
    root = three_classes(tmp_path / "data")
    shutil.rmtree(root / "normal")
    if trouble == "empty folder":
        (root / "normal").mkdir()
    refused({"classes": ["benign", "malignant", "normal"]}, root, tmp_path,
            r"without a single readable image: normal.*remove the class\(es\) from `classes:`")


def test_classes_that_do_not_exist_at_all_stop_the_manifest(tmp_path):
    root = three_classes(tmp_path / "data")
    refused({"classes": ["cat", "dog"]}, root, tmp_path,
            r"without a single readable image: cat, dog.*not one of `classes:`.*0 class\(es\) with images")


def test_an_unlisted_folder_with_images_stops_the_manifest_unless_ignored(tmp_path):
    root = three_classes(tmp_path / "data")
    spec = {"classes": ["benign", "malignant"]}
    refused(spec, root, tmp_path, r"not one of `classes:` \['benign', 'malignant'\]: .*normal \(.*6 file\(s\)\)"
                                  r".*ignore_classes")
    manifest = make_dataset_manifest("d", {"adapter": "imagefolder", **spec, "ignore_classes": ["normal"]}, root,
                                     tmp_path / "m.tsv", tmp_path / "m.issues.tsv")
    assert manifest.counts() == {"benign": 6, "malignant": 6}
    assert issue_kinds(manifest)["normal"] == "ignored_class"


def test_a_single_class_stops_the_manifest(tmp_path):
    root = tmp_path / "data"
    for i in range(8):
        save_image(root / "only" / f"{i}.png", seed=i)
    refused({}, root, tmp_path, r"1 class\(es\) with images \(only\): the probes need at least two")


def test_symlinks_are_refused_unless_allowed_and_then_listed(tmp_path):
    root = three_classes(tmp_path / "data")
    (root / "benign" / "link.png").symlink_to(root / "malignant" / "malignant0.png")
    spec = {"classes": ["benign", "malignant", "normal"]}
    refused(spec, root, tmp_path, r"1 sample\(s\) are reached through symbolic links: .*benign/link.png -> "
                                  r".*malignant/malignant0.png.*allow_symlinks: true")
    manifest = make_dataset_manifest("d", {"adapter": "imagefolder", **spec, "allow_symlinks": True}, root,
                                     tmp_path / "m.tsv", tmp_path / "m.issues.tsv")
    assert issue_kinds(manifest)["link.png"] == "symlink" and manifest.counts()["benign"] == 7


def test_a_symlinked_root_is_fine(tmp_path):
    root = three_classes(tmp_path / "data")
    (tmp_path / "alias").symlink_to(root)
    manifest = make_dataset_manifest("d", {"adapter": "imagefolder"}, tmp_path / "alias", tmp_path / "m.tsv",
                                     tmp_path / "m.issues.tsv")
    assert len(manifest.samples) == 18


@pytest.mark.parametrize("row", ["../outside.png", "ABSOLUTE", "benign/../../outside.png"])
def test_csv_paths_outside_the_root_are_never_read(tmp_path, row, monkeypatch):
    from medprobe import manifest as manifest_module

    root = three_classes(tmp_path / "data", per_class=3)
    outside = save_image(tmp_path / "outside.png", seed=77)
    row = str(outside) if row == "ABSOLUTE" else row
    lines = ["image,label"] + [f"{c}/{c}{i}.png,{c}" for c in ("benign", "malignant", "normal") for i in range(3)]
    (root / "labels.csv").write_text("\n".join(lines + [f"{row},benign"]) + "\n")
    opened = []
    monkeypatch.setattr(manifest_module, "read_source", lambda p: opened.append(p) or (_ for _ in ()).throw(OSError))
    out = tmp_path / "out" / "m.tsv"
    with pytest.raises(DatasetError, match=r"1 sample path\(s\) lie outside the dataset root: .*outside.png.*"
                                           r"path_template"):
        make_dataset_manifest("d", {"adapter": "csv", "csv": {"file": "labels.csv", "path_column": "image"}},
                              root, out, tmp_path / "out" / "i.tsv")
    assert opened == [] and not out.exists()


def test_a_path_template_that_climbs_out_is_refused(tmp_path):
    root = three_classes(tmp_path / "data", per_class=3)
    lines = ["image,label"] + [f"{c}{i},{c}" for c in ("benign", "malignant", "normal") for i in range(3)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    spec = {"adapter": "csv", "csv": {"file": "labels.csv", "path_column": "image",
                                      "path_template": "../{label}/{image}.png"}}
    with pytest.raises(DatasetError, match=r"9 sample path\(s\) lie outside the dataset root"):
        make_dataset_manifest("d", spec, root, tmp_path / "m.tsv", tmp_path / "i.tsv")


def test_control_characters_in_file_names_are_refused_and_listed_escaped(tmp_path):
    root = three_classes(tmp_path / "data")
    save_image(root / "benign" / "tab\there.png", seed=55)
    save_image(root / "benign" / "new\nline.png", seed=56)
    manifest = make_dataset_manifest("d", {"adapter": "imagefolder"}, root, tmp_path / "m.tsv",
                                     tmp_path / "m.issues.tsv")
    assert manifest.counts()["benign"] == 6
    issues = (tmp_path / "m.issues.tsv").read_text()
    assert "tab\\x09here.png\tunsafe_file_name" in issues and "new\\x0aline.png\tunsafe_file_name" in issues
    for path in (tmp_path / "m.tsv", tmp_path / "m.issues.tsv"):   # one line per row: safe for cut and awk
        lines = path.read_text().splitlines()
        assert len({line.count("\t") for line in lines}) == 1


def test_the_fingerprint_notices_every_change_under_the_root(tmp_path):
    import os

    from medprobe.manifest import input_fingerprint

    root = three_classes(tmp_path / "data", per_class=2)
    before = input_fingerprint(root)
    assert input_fingerprint(root) == before
    target = root / "benign" / "benign0.png"
    stat = target.stat()
    save_image(target, seed=999, size=(41, 32))   # replaced under the same name
    assert input_fingerprint(root) != before
    save_image(target, seed=0)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))   # the original bytes and time back
    assert input_fingerprint(root) == before
    save_image(root / "normal" / "extra.png", seed=5)
    assert input_fingerprint(root) != before
    assert input_fingerprint(tmp_path / "nowhere") == "absent"
