"""Every adapter on a synthetic copy of its release's exact layout and file naming (tiny images made here)."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from conftest import save_image
from medprobe.errors import DatasetError
from medprobe.imageio import load_rgb
from medprobe.manifest import build_manifest, count_mismatches, make_dataset_manifest
from medprobe.registry import load_datasets


@pytest.fixture(scope="module")
def registry(repo):
    return load_datasets(repo / "config" / "datasets.yaml")


def manifest_of(spec, root, **kwargs):
    """The adapter's listing, decoded (these miniature releases miss classes; the class checks have their own tests)."""
    kwargs.setdefault("check_classes", False)
    return build_manifest(root, adapter=spec["adapter"], classes=spec.get("classes"),
                          exclude=spec.get("exclude", ()), spec=spec, **kwargs)


def kinds(manifest):
    return dict(zip(manifest.issues["path"].str.rsplit("/", n=1).str[-1], manifest.issues["kind"]))


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_brainmr_class_folders_and_count_error(registry, tmp_path):
    spec = registry["brainmr"]
    root = tmp_path / "brainmr" / "Training"
    names = {"glioma_tumor": "gg ({}).jpg", "meningioma_tumor": "m ({}).jpg", "no_tumor": "image ({}).jpg",
             "pituitary_tumor": "p ({}).jpg"}
    for c, (folder, pattern) in enumerate(names.items()):
        for i in range(1, 4):
            save_image(root / folder / pattern.format(i), seed=10 * c + i)
    manifest = manifest_of(spec, root)
    assert manifest.counts() == {name: 3 for name in names}
    problems = count_mismatches(manifest, spec["expected"])
    assert "expected 2870 images, found 12" in problems and "class 'no_tumor': expected 395, found 3" in problems
    with pytest.raises(DatasetError, match="expected 2870 images, found 12"):
        make_dataset_manifest("brainmr", spec, root, tmp_path / "m.tsv", tmp_path / "i.tsv")


def test_sarscov2ct_reports_the_file_that_fails_to_decode(registry, tmp_path):
    spec = registry["sarscov2ct"]
    root = tmp_path / "sarscov2ct"
    for i in range(1, 4):
        save_image(root / "COVID" / f"Covid ({i}).png", seed=i)
        save_image(root / "non-COVID" / f"Non-Covid ({i}).png", seed=20 + i)
    (root / "COVID" / "Covid (4).png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    manifest = manifest_of(spec, root)
    assert manifest.counts() == {"COVID": 3, "non-COVID": 3}
    assert kinds(manifest)["Covid (4).png"] == "unreadable"
    assert manifest.samples.loc[manifest.samples.label_name == "non-COVID", "label"].unique().tolist() == [1]


def test_pneumoniamnist_npz(registry, tmp_path):
    spec = registry["pneumoniamnist"]
    file = tmp_path / "pneumoniamnist" / "pneumoniamnist_224.npz"
    file.parent.mkdir()
    rng = np.random.default_rng(0)
    labels = np.array([[0], [1], [1], [0], [1]], dtype=np.uint8)
    np.savez_compressed(file, train_images=rng.integers(0, 256, (5, 224, 224), dtype=np.uint8),
                        train_labels=labels, val_images=np.zeros((2, 224, 224), np.uint8),
                        val_labels=np.zeros((2, 1), np.uint8))
    manifest = manifest_of(spec, file)
    samples = manifest.samples
    assert manifest.counts() == {"normal": 2, "pneumonia": 3}
    assert samples.sample_id.tolist() == ["train/0", "train/1", "train/2", "train/3", "train/4"]
    assert (samples.width == 224).all() and (samples["mode"] == "L").all()
    image = load_rgb(samples.path.iloc[1])
    assert image.size == (224, 224) and image.mode == "RGB"
    with np.load(file) as archive:
        np.testing.assert_array_equal(np.asarray(image)[..., 0], archive["train_images"][1])
    bad = {**spec, "npz": {"images": "train_images", "labels": "nope"}}
    with pytest.raises(DatasetError, match="no array"):
        manifest_of(bad, file)


def test_busi_masks_are_excluded(registry, tmp_path):
    spec = registry["busi"]
    root = tmp_path / "busi" / "Dataset_BUSI_with_GT"
    for name in ("benign", "malignant", "normal"):
        save_image(root / name / f"{name} (1).png", seed=len(name))
        save_image(root / name / f"{name} (1)_mask.png", seed=1)
    save_image(root / "benign" / "benign (1)_mask_1.png", seed=2)
    manifest = manifest_of(spec, root)
    assert len(manifest.samples) == 3
    assert kinds(manifest)["benign (1)_mask_1.png"] == "excluded"
    assert (manifest.issues.kind == "excluded").sum() == 4


def test_breakhis_nested_patient_folders(registry, tmp_path):
    spec = registry["breakhis"]
    root = tmp_path / "breakhis" / "BreaKHis_v1"
    slides = root / "histology_slides" / "breast"
    files = [("benign", "adenosis", "SOB_B_A_14-22549AB", "SOB_B_A-14-22549AB-{mag}-00{i}.png"),
             ("benign", "tubular_adenoma", "SOB_B_TA_14-4659", "SOB_B_TA-14-4659-{mag}-00{i}.png"),
             ("malignant", "papillary_carcinoma", "SOB_M_PC_15-190EF", "SOB_M_PC-15-190EF-{mag}-00{i}.png")]
    for n, (kind, subtype, patient, pattern) in enumerate(files):
        for mag in (40, 400):
            for i in (1, 2):
                save_image(slides / kind / "SOB" / subtype / patient / f"{mag}X" / pattern.format(mag=mag, i=i),
                           seed=100 * n + mag + i)
    shutil.copytree(slides / "benign", root / "mkfold" / "fold1" / "train" / "40X")  # the release's fold copies
    (slides / "benign" / "SOB" / "adenosis" / "Thumbs.db").write_bytes(b"x")
    manifest = manifest_of(spec, root)
    assert manifest.counts() == {"benign": 8, "malignant": 4}
    groups = manifest.samples.groupby("group").size().to_dict()
    assert groups == {"14-22549AB": 4, "14-4659": 4, "15-190EF": 4}
    assert kinds(manifest)["Thumbs.db"] == "unexpected_file"
    assert not manifest.samples.path.str.contains("mkfold").any()


def test_hicervix_csv(registry, tmp_path):
    spec = registry["hicervix"]
    root = tmp_path / "hicervix"
    rows = [("3f2a.jpg", "NILM", 0, "negative", "NILM", ""), ("9b1c.jpg", "ASC-US", 5, "ASC", "ASC-US", ""),
            ("77de.jpg", "HSIL", 8, "ASC", "HSIL", ""), ("aa01.jpg", "NILM", 0, "negative", "NILM", ""),
            ("gone.jpg", "HSIL", 8, "ASC", "HSIL", "")]
    write_csv(root / "train.csv", ["image_name", "class_name", "class_id", "level_1", "level_2", "level_3"], rows)
    for i, row in enumerate(rows[:4]):
        save_image(root / "train" / row[0], seed=i)
    manifest = manifest_of(spec, root)
    assert manifest.class_names == ["NILM", "ASC-US", "HSIL"]  # class_id order
    assert manifest.counts() == {"NILM": 2, "ASC-US": 1, "HSIL": 1}
    assert kinds(manifest)["gone.jpg"] == "missing_file"
    coarse = manifest_of({**spec, "csv": {**spec["csv"], "label_column": "level_1"}}, root)
    assert coarse.class_names == ["ASC", "negative"]


def test_deepdrid_grade_from_whichever_eye_column_is_filled(registry, tmp_path):
    spec = registry["deepdrid"]
    root = tmp_path / "deepdrid" / "regular_fundus_images" / "regular-fundus-training"
    header = ["patient_id", "image_id", "image_path", "Overall quality", "left_eye_DR_Level", "right_eye_DR_Level",
              "patient_DR_Level", "Clarity", "Field definition", "Artifact"]
    rows = [(1, "1_l1", "\\regular-fundus-training\\1\\1_l1.jpg", 1, 0, "", 2, 1, 1, 0),
            (1, "1_r1", "\\regular-fundus-training\\1\\1_r1.jpg", 1, "", 2, 2, 1, 1, 0),
            (56, "56_r3", "\\regular-fundus-training\\56\\56_r3.jpg", 1, 4, "", 4, 1, 1, 0),  # swapped in the release
            (57, "57_l1", "\\regular-fundus-training\\57\\57_l1.jpg", 1, "", "", 1, 1, 1, 0)]
    write_csv(root / "regular-fundus-training.csv", header, rows)
    for i, row in enumerate(rows):
        save_image(root / "Images" / str(row[0]) / f"{row[1]}.jpg", seed=i)
    manifest = manifest_of(spec, root)
    grades = dict(zip(manifest.samples.sample_id, manifest.samples.label_name))
    assert grades == {"Images/1/1_l1.jpg": "grade_0", "Images/1/1_r1.jpg": "grade_2",
                      "Images/56/56_r3.jpg": "grade_4"}
    assert dict(zip(manifest.samples.sample_id, manifest.samples.group))["Images/56/56_r3.jpg"] == "56"
    assert kinds(manifest)["57_l1.jpg"] == "no_label"


def test_isic2019_one_hot_and_lesion_groups(registry, tmp_path):
    spec = registry["isic2019"]
    root = tmp_path / "isic2019"
    classes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]

    def hot(name):
        return [("1.0" if c == name else "0.0") for c in classes]

    images = [("ISIC_0000000", "NV"), ("ISIC_0000001", "NV"), ("ISIC_0000017_downsampled", "MEL"),
              ("ISIC_0053450", "SCC"), ("ISIC_0073247", "UNK")]
    write_csv(root / "ISIC_2019_Training_GroundTruth.csv", ["image", *classes], [(i, *hot(c)) for i, c in images])
    write_csv(root / "ISIC_2019_Training_Metadata.csv", ["image", "age_approx", "anatom_site_general", "lesion_id",
                                                          "sex"],
              [("ISIC_0000000", 55, "anterior torso", "", "female"), ("ISIC_0000001", 30, "", "", "female"),
               ("ISIC_0000017_downsampled", 40, "", "", "male"), ("ISIC_0053450", 70, "head/neck", "BCN_0001", "male"),
               ("ISIC_0073247", 60, "", "BCN_0001", "male")])
    for i, (image, _) in enumerate(images):
        save_image(root / "ISIC_2019_Training_Input" / f"{image}.jpg", seed=i)
    (root / "ISIC_2019_Training_Input" / "LICENSE.txt").write_text("CC BY-NC")
    manifest = manifest_of(spec, root)
    assert manifest.counts()["NV"] == 2 and manifest.counts()["MEL"] == 1 and manifest.counts()["SCC"] == 1
    assert kinds(manifest)["ISIC_0073247.jpg"] == "no_label"  # UNK: no class of the eight
    groups = dict(zip(manifest.samples.sample_id, manifest.samples.group))
    assert groups["ISIC_0053450"] == "BCN_0001" and groups["ISIC_0000000"] == "ISIC_0000000"


def test_generic_csv_adapter(tmp_path):
    root = tmp_path / "mine"
    write_csv(root / "labels.csv", ["file", "diagnosis", "patient"],
              [("a.png", "normal", "p1"), ("b.png", "abnormal", "p1"), ("c.png", "normal", "p2")])
    for i, name in enumerate("abc"):
        save_image(root / "images" / f"{name}.png", seed=i)
    spec = {"adapter": "csv", "classes": ["normal", "abnormal"],
            "csv": {"file": "labels.csv", "path_column": "file", "label_column": "diagnosis",
                    "group_column": "patient", "path_template": "images/{file}"}}
    manifest = manifest_of(spec, root)
    assert manifest.counts() == {"normal": 2, "abnormal": 1}
    assert manifest.samples.group.tolist() == ["p1", "p1", "p2"]
    with pytest.raises(DatasetError, match="column"):
        manifest_of({**spec, "csv": {**spec["csv"], "label_column": "dx"}}, root)
