"""The DLILP chest X-ray partitions on constructed label files with known answers, and two adapters end to end."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from conftest import save_image
from medprobe.datasets import ADAPTERS, cxr, list_samples
from medprobe.datasets import cxr_partitions as parts
from medprobe.errors import DatasetError
from medprobe.manifest import make_dataset_manifest
from medprobe.registry import load_datasets, obtain_hint
from test_imageio import write_dicom

NEW_IDS = ["chexpert_5x200", "mimic_5x200", "siim_pneumothorax", "rsna_pneumonia", "nih_lt", "vindr_pcxr",
           "covid_4class", "covid_2class"]


@pytest.fixture(scope="module")
def registry(repo):
    return load_datasets(repo / "config" / "datasets.yaml")


def shuffled(frame: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def class_of(partition: pd.DataFrame, classes) -> list[str]:
    return [classes[i] for i in parts.one_positive(partition, classes)["label"]]


# --- the filter --------------------------------------------------------------------------------------------------

def test_one_positive_keeps_single_positive_rows_in_order_and_renumbers():
    partition = pd.DataFrame({"path": list("abcde"), "group": ["", "", "", "", ""],
                              "Normal": [1, 0, 1, 0, 0], "COVID": [0, 1, 1, 0, 0], "Other": [0, 0, 0, 1, 0]})
    kept = parts.one_positive(partition, ["Normal", "COVID"])
    assert kept["path"].tolist() == ["a", "b"] and kept["label"].tolist() == [0, 1]
    assert parts.one_positive(partition, ["COVID", "Other"])["path"].tolist() == ["b", "c", "d"]  # Normal ignored


# --- CheXpert 5x200 ----------------------------------------------------------------------------------------------

def chexpert_train(n_per_task: int = 4) -> pd.DataFrame:
    columns = parts.FIVE_TASKS + parts.CHEXPERT_OTHER_FINDINGS + ["No Finding"]
    rows = []

    def add(path, view="Frontal", **labels):
        rows.append({"Path": f"CheXpert-v1.0/train/{path}", "Frontal/Lateral": view,
                     **{c: labels.get(c.replace(" ", "_"), np.nan) for c in columns}})

    for t, task in enumerate(parts.FIVE_TASKS):
        key = task.replace(" ", "_")
        for i in range(n_per_task):
            add(f"patient{t}{i:04d}/study1/view1_frontal.jpg", **{key: 1.0, "No_Finding": 1.0})  # NaN others = 0
        add(f"patient{t}9000/study1/view2_lateral.jpg", view="Lateral", **{key: 1.0})
        add(f"patient{t}9001/study1/view1_frontal.jpg", **{key: 1.0, "Support_Devices": 1.0})
        add(f"patient{t}9002/study1/view1_frontal.jpg", **{key: 1.0, "Edema" if t != 3 else "Atelectasis": -1.0})
        add(f"patient{t}9003/study1/view1_frontal.jpg", **{key: 1.0, "Cardiomegaly" if t != 1 else "Edema": 1.0})
    return pd.DataFrame(rows)


def test_chexpert_frontal_exclusive_positive_rule_counts_and_determinism():
    train = chexpert_train()
    partition = parts.chexpert_5x200(train, n=3)
    assert class_of(partition, parts.FIVE_TASKS) == [t for t in parts.FIVE_TASKS for _ in range(3)]
    assert not partition["group"].str[-4:].str.startswith("9").any()  # lateral, second finding, uncertain: out
    assert all(p.startswith("train/patient") for p in partition["path"])
    assert partition["group"].tolist() == [p.split("/")[1] for p in partition["path"]]
    again = parts.chexpert_5x200(shuffled(train), n=3)
    pd.testing.assert_frame_equal(partition, again)
    with pytest.raises(ValueError):  # only 4 eligible per task
        parts.chexpert_5x200(train, n=5)


# --- MIMIC 5x200 -------------------------------------------------------------------------------------------------

def mimic_tables():
    chexpert, split, metadata = [], [], []
    subject = 10000000
    for t, task in enumerate(parts.FIVE_TASKS):
        for i in range(4):
            subject += 1
            for s, view in enumerate(["LATERAL", "AP", "PA"]):  # the lateral image comes first: never chosen
                study = subject * 10 + 1
                dicom = f"d{subject}-{s}"
                split.append({"dicom_id": dicom, "study_id": study, "subject_id": subject, "split": "train"})
                metadata.append({"dicom_id": dicom, "subject_id": subject, "study_id": study, "ViewPosition": view})
            chexpert.append({"subject_id": subject, "study_id": subject * 10 + 1, **{task: 1.0}})
            second = subject * 10 + 2  # a second study of the same subject: one image per subject
            split.append({"dicom_id": f"e{subject}", "study_id": second, "subject_id": subject, "split": "train"})
            metadata.append({"dicom_id": f"e{subject}", "subject_id": subject, "study_id": second,
                             "ViewPosition": "PA"})
            chexpert.append({"subject_id": subject, "study_id": second, **{task: 1.0}})
        subject += 1  # two positives: not eligible; an uncertain other task: not eligible
        for k, labels in enumerate([{task: 1.0, parts.FIVE_TASKS[(t + 1) % 5]: 1.0},
                                    {task: 1.0, parts.FIVE_TASKS[(t + 1) % 5]: -1.0}]):
            study = subject * 10 + k
            split.append({"dicom_id": f"x{study}", "study_id": study, "subject_id": subject + k, "split": "test"})
            metadata.append({"dicom_id": f"x{study}", "subject_id": subject + k, "study_id": study,
                             "ViewPosition": "PA"})
            chexpert.append({"subject_id": subject + k, "study_id": study, **labels})
        subject += 1
    columns = ["subject_id", "study_id"] + parts.FIVE_TASKS + ["No Finding"]
    return pd.DataFrame(chexpert).reindex(columns=columns), pd.DataFrame(split), pd.DataFrame(metadata)


def test_mimic_frontal_one_image_per_subject_and_n_per_class():
    chexpert, split, metadata = mimic_tables()
    partition = parts.mimic_5x200(chexpert, split, metadata, n=3)
    assert class_of(partition, parts.FIVE_TASKS) == [t for t in parts.FIVE_TASKS for _ in range(3)]
    assert partition["group"].is_unique  # one image per subject
    names = [p.rsplit("/", 1)[1] for p in partition["path"]]
    assert all(name.startswith("d") and name.endswith("-1.jpg") for name in names)  # the first frontal (AP) image
    first = partition["path"].iloc[0]
    subject = partition["group"].iloc[0]
    assert first.startswith(f"files/p{subject[:2]}/p{subject}/s{int(subject) * 10 + 1}/")
    again = parts.mimic_5x200(shuffled(chexpert), shuffled(split, 2), shuffled(metadata, 3), n=3)
    pd.testing.assert_frame_equal(partition, again)
    with pytest.raises(ValueError):  # 4 eligible subjects per task: two positives or an uncertain other task are out
        parts.mimic_5x200(chexpert, split, metadata, n=5)


# --- SIIM --------------------------------------------------------------------------------------------------------

def siim_rle():
    rows = [("img_p1", " 10 5"), ("img_n1", " -1"), ("img_p1", " 40 3"), ("img_n2", " -1"), ("img_p2", " 1 1"),
            ("img_n3", " -1"), ("img_p3", " 7 7"), ("img_n4", " -1")]
    return pd.DataFrame(rows, columns=["ImageId", " EncodedPixels"])


def test_siim_encoded_pixels_rule_first_rows_per_class():
    paths = {i: f"dicom-images-train/s/{i}/{i}.dcm" for i in ["img_p1", "img_p2", "img_p3", "img_n1", "img_n2"]}
    out = parts.siim(siim_rle(), paths, n_train=2, n_test=1)
    train, test = out["train"], out["test"]
    assert class_of(train, parts.SIIM_CLASSES) == ["Pneumothorax", "Pneumothorax", "Normal", "Normal"]
    # rows, not images: img_p1 has two masks, both rows count (the authors' rule)
    assert [p.rsplit("/", 1)[1] for p in train["path"]] == ["img_p1.dcm", "img_p1.dcm", "img_n1.dcm", "img_n2.dcm"]
    assert [p.rsplit("/", 1)[1] for p in test["path"]] == ["img_p2.dcm", "img_n3.dcm"]
    assert test["path"].tolist()[1] == "dicom-images-train/img_n3.dcm"  # no file found: listed, then missing
    pd.testing.assert_frame_equal(train, parts.siim(siim_rle(), paths, n_train=2, n_test=1)["train"])


# --- RSNA --------------------------------------------------------------------------------------------------------

def rsna_detailed(n_opacity=8, n_normal=12, n_other=5):
    rows = []
    for i in range(n_opacity):
        rows += [(f"op{i:02d}", "Lung Opacity")] * (1 + i % 3)  # one row per box
    rows += [(f"no{i:02d}", "Normal") for i in range(n_normal)]
    rows += [(f"ot{i:02d}", "No Lung Opacity / Not Normal") for i in range(n_other)]
    order = np.random.default_rng(0).permutation(len(rows))
    return pd.DataFrame([rows[i] for i in order], columns=["patientId", "class"])


def test_rsna_duplicates_by_patient_balanced_draw_and_split():
    detailed = rsna_detailed()
    out = parts.rsna(detailed, n=6)
    both = pd.concat([out["train"], out["test"]])
    assert len(both) == 12 and both["group"].is_unique  # each patient once, though opacity rows repeat
    assert len(out["test"]) == 4 and len(out["train"]) == 8  # train_test_split(test_size=0.3): ceil(3.6) = 4
    labels = class_of(both, parts.RSNA_CLASSES)
    assert labels.count("Pneumonia") == 6 and labels.count("Normal") == 6
    assert not both["group"].str.startswith("ot").any()
    opacity_in_file_order = list(dict.fromkeys(p for p, c in detailed.itertuples(index=False) if c == "Lung Opacity"))
    assert set(both.loc[both["Pneumonia"] == 1, "group"]) == set(opacity_in_file_order[:6])
    assert all(p == f"stage_2_train_images/{g}.dcm" for p, g in zip(both["path"], both["group"]))
    again = parts.rsna(detailed, n=6)
    for subset in ("train", "test"):
        pd.testing.assert_frame_equal(out[subset], again[subset])


@pytest.mark.parametrize("n", [2, 7, 12, 101])
def test_shuffle_split_is_scikit_learns_train_test_split(n):
    from sklearn.model_selection import train_test_split

    frame = pd.DataFrame({"x": np.arange(n) * 3})
    ours = parts.shuffle_split(frame, 0.3, 0)
    theirs = train_test_split(frame, test_size=0.3, random_state=0)
    for a, b in zip(ours, theirs):
        pd.testing.assert_frame_equal(a, b)


# --- COVID -------------------------------------------------------------------------------------------------------

def covid_listing(n=6):
    folders = {"COVID": "COVID", "Normal": "Normal", "Pneumonia": "Viral Pneumonia", "Lung Opacity": "Lung_Opacity"}
    return {name: [f"{folder}/images/{folder.replace(' ', '_')}-{i}.png" for i in range(1, n + 1)]
            for name, folder in folders.items()}


def test_covid_sorted_listing_first_n_and_two_class_renumbering():
    listing = covid_listing()
    out = parts.covid(listing, n_test=2, n_train=3, n_opacity_test=1)
    test, train = out["test"], out["train"]
    assert test["path"].tolist()[:2] == ["COVID/images/COVID-1.png", "COVID/images/COVID-2.png"]
    assert class_of(test, parts.COVID_CLASSES) == ["COVID"] * 2 + ["Normal"] * 2 + ["Pneumonia"] * 2 + ["Lung Opacity"]
    assert train["path"].tolist()[:3] == ["COVID/images/COVID-3.png", "COVID/images/COVID-4.png",
                                          "COVID/images/COVID-5.png"]
    assert train["path"].tolist()[-3:] == [f"Lung_Opacity/images/Lung_Opacity-{i}.png" for i in (2, 3, 4)]
    reversed_listing = {k: list(reversed(v)) for k, v in listing.items()}  # os.listdir order is arbitrary
    again = parts.covid(reversed_listing, n_test=2, n_train=3, n_opacity_test=1)
    pd.testing.assert_frame_equal(test, again["test"])
    two = parts.one_positive(train, ["Normal", "COVID"])
    assert two["label"].tolist() == [1, 1, 1, 0, 0, 0] and len(two) == 6


# --- VinDr-PCXR --------------------------------------------------------------------------------------------------

def vindr_labels(prefix: str, per_class: int):
    columns = ["No finding", "Bronchitis", "Brocho-pneumonia", "Bronchiolitis", "Pneumonia", "Other disease"]
    rows = []
    for i in range(per_class):
        for c in columns[:5]:
            rows.append({"image_id": f"{prefix}-{c.split()[0]}-{i}", **{k: int(k == c) for k in columns}})
    rows.append({"image_id": f"{prefix}multi", **{k: int(k in ("Bronchitis", "Pneumonia")) for k in columns}})
    return pd.DataFrame(rows)


def test_vindr_first_n_per_class_in_class_order():
    out = parts.vindr(vindr_labels("a", 5), vindr_labels("b", 3), n_train=4, n_test=2)
    assert class_of(out["train"], parts.VINDR_CLASSES) == [c for c in parts.VINDR_CLASSES for _ in range(4)]
    assert class_of(out["test"], parts.VINDR_CLASSES) == [c for c in parts.VINDR_CLASSES for _ in range(2)]
    assert out["train"]["path"].tolist()[:2] == ["train/a-No-0.dicom", "train/a-No-1.dicom"]
    assert out["test"]["path"].tolist()[2:4] == ["test/b-Pneumonia-0.dicom", "test/b-Pneumonia-1.dicom"]
    assert not out["train"]["path"].str.contains("multi").any()


# --- NIH-LT ------------------------------------------------------------------------------------------------------

def nih_table(ids, labels):
    columns = [c if c != "Pleural Thickening" else "Pleural_Thickening" for c in parts.NIH_LT_CLASSES] + ["Hernia"]
    return pd.DataFrame([{"id": i, **{c: int(c == label) for c in columns}} for i, label in zip(ids, labels)])


def test_nih_lt_train_is_train_plus_balanced_test_and_test_is_balanced_val():
    train = nih_table(["00000001_000.png", "00000001_001.png", "00000002_000.png"],
                      ["Atelectasis", "Hernia", "Pleural_Thickening"])
    balanced_test = nih_table(["00000003_000.png"], ["Tortuous Aorta"])
    balanced_val = nih_table(["00000004_000.png", "00000005_002.png"], ["No Finding", "Calcification of the Aorta"])
    out = parts.nih_lt(train, balanced_test, balanced_val)
    kept = parts.one_positive(out["train"], parts.NIH_LT_CLASSES)
    assert kept["path"].tolist() == ["images/00000001_000.png", "images/00000002_000.png", "images/00000003_000.png"]
    assert [parts.NIH_LT_CLASSES[i] for i in kept["label"]] == ["Atelectasis", "Pleural Thickening", "Tortuous Aorta"]
    assert kept["group"].tolist() == ["00000001", "00000002", "00000003"]  # Hernia dropped by the filter
    assert class_of(out["test"], parts.NIH_LT_CLASSES) == ["No Finding", "Calcification of the Aorta"]


# --- the registry ------------------------------------------------------------------------------------------------

def test_new_registry_entries_validate_and_match_the_builders(registry):
    assert set(NEW_IDS) <= set(registry)
    classes = {"chexpert_5x200": parts.FIVE_TASKS, "mimic_5x200": parts.FIVE_TASKS, "siim_pneumothorax":
               parts.SIIM_CLASSES, "rsna_pneumonia": parts.RSNA_CLASSES, "nih_lt": parts.NIH_LT_CLASSES,
               "vindr_pcxr": parts.VINDR_CLASSES, "covid_4class": parts.COVID_CLASSES,
               "covid_2class": ["Normal", "COVID"]}
    for dataset_id in NEW_IDS:
        spec = registry[dataset_id]
        assert spec["adapter"] in ADAPTERS and spec["adapter"] in cxr.LISTERS
        assert spec["classes"] == classes[dataset_id]
        assert "download" not in spec and "{data_root}" in spec["obtain"]
        counts = spec["expected"].get("counts")
        if counts:
            assert sum(counts.values()) == spec["expected"]["n"] and list(counts) == spec["classes"]
    assert registry["vindr_pcxr"]["dicom"] == {"invert": True}
    assert registry["covid_4class"]["expected"]["counts"] == {"Normal": 1300, "COVID": 1300, "Pneumonia": 1300,
                                                              "Lung Opacity": 600}


def test_missing_root_gives_the_obtain_steps(registry, tmp_path):
    spec = registry["rsna_pneumonia"]
    with pytest.raises(DatasetError) as err:
        make_dataset_manifest("rsna_pneumonia", spec, tmp_path / "rsna-pneumonia", tmp_path / "m.tsv",
                              tmp_path / "i.tsv", obtain=obtain_hint(spec, tmp_path))
    message = str(err.value)
    assert "kaggle competitions download -c rsna-pneumonia-detection-challenge" in message
    assert f"{tmp_path}/rsna-pneumonia/stage_2_train_images" in message
    spec = registry["mimic_5x200"]
    with pytest.raises(DatasetError, match="wget -r -N -c -np .* https://physionet.org/files/mimic-cxr-jpg/2.0.0/"):
        make_dataset_manifest("mimic_5x200", spec, tmp_path / "mimic", tmp_path / "m.tsv", tmp_path / "i.tsv",
                              obtain=obtain_hint(spec, tmp_path))


# --- end to end --------------------------------------------------------------------------------------------------

def test_covid_png_release_through_the_manifest(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(cxr.parts, "covid", functools.partial(parts.covid, n_test=2, n_train=1, n_opacity_test=1))
    root = tmp_path / "COVID-19_Radiography_Dataset"
    for c, folder in enumerate(["COVID", "Normal", "Viral Pneumonia", "Lung_Opacity"]):
        for i in (3, 1, 2):
            save_image(root / folder / "images" / f"{folder.replace(' ', '_')}-{i}.png", seed=10 * c + i)
        save_image(root / folder / "masks" / f"{folder.replace(' ', '_')}-1.png", seed=99)
    (root / "COVID" / "images" / ".DS_Store").write_bytes(b"\0")  # sorts first; not an image: never counted
    four = make_dataset_manifest("covid_4class", registry["covid_4class"], root, tmp_path / "m4.tsv",
                                 tmp_path / "i4.tsv", count_mismatch="warn")
    ids = four.samples["sample_id"].tolist()
    assert ids[:4] == ["test/000000/COVID/images/COVID-1.png", "test/000001/COVID/images/COVID-2.png",
                       "test/000002/Normal/images/Normal-1.png", "test/000003/Normal/images/Normal-2.png"]
    assert ids[-4:] == ["train/000000/COVID/images/COVID-3.png", "train/000001/Normal/images/Normal-3.png",
                        "train/000002/Viral Pneumonia/images/Viral_Pneumonia-3.png",
                        "train/000003/Lung_Opacity/images/Lung_Opacity-2.png"]
    assert four.counts() == {"Normal": 3, "COVID": 3, "Pneumonia": 3, "Lung Opacity": 2}
    assert not four.samples["path"].str.contains("masks").any()
    two = make_dataset_manifest("covid_2class", registry["covid_2class"], root, tmp_path / "m2.tsv",
                                tmp_path / "i2.tsv", count_mismatch="warn")
    assert two.samples["sample_id"].tolist() == [
        "test/000000/COVID/images/COVID-1.png", "test/000001/COVID/images/COVID-2.png",
        "test/000002/Normal/images/Normal-1.png", "test/000003/Normal/images/Normal-2.png",
        "train/000000/COVID/images/COVID-3.png", "train/000001/Normal/images/Normal-3.png"]
    assert two.samples["label"].tolist() == [1, 1, 0, 0, 1, 0]


def test_siim_dicom_release_through_the_manifest(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(cxr.parts, "siim", functools.partial(parts.siim, n_train=2, n_test=1))
    root = tmp_path / "siim-pneumothorax"
    root.mkdir()
    siim_rle().to_csv(root / "train-rle.csv", index=False)
    rng = np.random.default_rng(0)
    for k, image_id in enumerate(["img_p1", "img_p2", "img_p3", "img_n1", "img_n2", "img_n3", "img_n4"]):
        write_dicom(root / "dicom-images-train" / f"1.2.{k}" / f"1.3.{k}" / f"{image_id}.dcm",
                    rng.integers(0, 4096, (24, 20)).astype(np.uint16), bits_stored=12)
    spec = registry["siim_pneumothorax"]
    manifest = make_dataset_manifest("siim_pneumothorax", spec, root, tmp_path / "m.tsv", tmp_path / "i.tsv",
                                     count_mismatch="warn")
    samples = manifest.samples
    expected = [("test", 0, 1, "p2"), ("test", 1, 5, "n3"), ("train", 0, 0, "p1"), ("train", 1, 0, "p1"),
                ("train", 2, 3, "n1"), ("train", 3, 4, "n2")]
    assert samples["sample_id"].tolist() == [f"{subset}/{i:06d}/dicom-images-train/1.2.{k}/1.3.{k}/img_{name}.dcm"
                                             for subset, i, k, name in expected]
    assert samples["label_name"].tolist() == ["Pneumothorax", "Normal", "Pneumothorax", "Pneumothorax", "Normal",
                                              "Normal"]
    assert (samples["mode"] == "DICOM MONOCHROME2").all() and (samples["width"] == 20).all()
    assert (samples["height"] == 24).all() and (samples["group"] == "").all()
    assert (manifest.issues["kind"] == "duplicate").sum() == 1  # img_p1's second mask row
    listing = list_samples("siim_pneumothorax", root, classes=spec["classes"], spec={})
    assert len(listing.candidates) == 6


def touch_all(root, paths):
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).touch()


def test_every_other_adapter_reads_its_release_files(registry, tmp_path, monkeypatch):
    """The label files' names and layout as released (the files are empty: a listing does not decode)."""
    for name, kwargs in {"chexpert_5x200": {"n": 2}, "mimic_5x200": {"n": 2}, "rsna": {"n": 4},
                         "vindr": {"n_train": 2, "n_test": 1}}.items():
        monkeypatch.setattr(cxr.parts, name, functools.partial(getattr(parts, name), **kwargs))

    def listed(dataset_id, root):
        spec = registry[dataset_id]
        listing = list_samples(spec["adapter"], root, classes=spec["classes"], spec=spec)
        assert not listing.issues, listing.issues
        return listing.candidates

    root = tmp_path / "chexpert"
    root.mkdir()
    chexpert_train().to_csv(root / "train.csv", index=False)
    touch_all(root, [parts.chexpert_relpath(p) for p in chexpert_train()["Path"]])
    found = listed("chexpert_5x200", root)
    assert [c.sample_id[:13] for c in found] == [f"train/{i:06d}/" for i in range(10)]
    assert found[0].group.startswith("patient") and found[0].class_name == "Atelectasis"

    root = tmp_path / "mimic"
    root.mkdir()
    chexpert, split, metadata = mimic_tables()
    for key, table in (("chexpert", chexpert), ("split", split), ("metadata", metadata)):
        table.to_csv(root / f"mimic-cxr-2.0.0-{key}.csv.gz", index=False)
    touch_all(root, [parts.mimic_relpath(*r) for r in split[["subject_id", "study_id", "dicom_id"]].itertuples(
        index=False)])
    found = listed("mimic_5x200", root)
    assert len(found) == 10 and found[-1].class_name == "Pleural Effusion" and found[0].group.isdigit()

    root = tmp_path / "rsna"
    root.mkdir()
    rsna_detailed().to_csv(root / "stage_2_detailed_class_info.csv", index=False)
    touch_all(root, [f"stage_2_train_images/{p}.dcm" for p in rsna_detailed()["patientId"]])
    found = listed("rsna_pneumonia", root)
    assert len(found) == 8 and sum(c.sample_id.startswith("test/") for c in found) == 3
    assert all(c.path.endswith(f"{c.group}.dcm") for c in found)

    root = tmp_path / "vindr"
    root.mkdir()
    vindr_labels("a", 3).to_csv(root / "image_labels_train.csv", index=False)
    vindr_labels("b", 2).to_csv(root / "image_labels_test.csv", index=False)
    touch_all(root, [f"train/{i}.dicom" for i in vindr_labels("a", 3)["image_id"]]
              + [f"test/{i}.dicom" for i in vindr_labels("b", 2)["image_id"]])
    found = listed("vindr_pcxr", root)
    assert [c.sample_id for c in found][:2] == ["train/000000/train/a-No-0.dicom", "train/000001/train/a-No-1.dicom"]
    assert len(found) == 15

    root = tmp_path / "nih"
    ids = ["00000001_000.png", "00000002_000.png", "00000003_001.png"]
    nih_table(ids[:1], ["Mass"]).to_csv(touch_dir(root / "LongTailCXR") / "nih-cxr-lt_single-label_train.csv",
                                        index=False)
    nih_table(ids[1:2], ["Edema"]).to_csv(root / "LongTailCXR" / "nih-cxr-lt_single-label_balanced-test.csv",
                                          index=False)
    nih_table(ids[2:], ["Hernia"]).to_csv(root / "LongTailCXR" / "nih-cxr-lt_single-label_balanced-val.csv",
                                          index=False)
    touch_all(root, [f"images/{i}" for i in ids])
    found = listed("nih_lt", root)
    assert [(c.sample_id, c.class_name, c.group) for c in found] == [
        ("train/000000/images/00000001_000.png", "Mass", "00000001"),
        ("train/000001/images/00000002_000.png", "Edema", "00000002")]


def touch_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path
