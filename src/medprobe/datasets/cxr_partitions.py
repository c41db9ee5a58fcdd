"""The DLILP study's chest X-ray partitions (jusiro/DLILP `local_data/partitions/partitions.py`), rebuilt from each
release's own label files: pure functions, tables in, ordered partition out, no disk access.

A partition is a DataFrame in the authors' row order with columns `path` (relative to the release's root), `group`
(patient id, "" where the release has none) and one 0/1 column per class. `one_positive` then applies the authors'
loader filter (`get_dataloader_splits`: keep rows with exactly one positive among the targets; label = its index).

Where the authors' code is not reproducible or not what it means, these builders are deterministic instead:
- CheXpert 5x200: GLoRIA draws `sample(n=200)` unseeded. We sort by Path and draw `sample(n=200, random_state=42)`.
  (The adapter prefers GLoRIA's own chexpert_5x200.csv when it lies in the root.)
- MIMIC 5x200: the authors' order is mimic-cxr-2.0.0-split.csv's; we sort it by (subject_id, study_id, dicom_id),
  which is how the release file appears to be ordered (its first rows are; not checked on the whole file), so a
  re-saved or re-ordered table gives the same `sample(n=200, random_state=42)`.
  Their "file exists" check before keeping a subject's first image is left to the manifest (missing files are issues).
- RSNA: stage_2_detailed_class_info.csv repeats a patient once per box. We keep the first row per patientId, take
  the first 6,000 "Lung Opacity" patients in file order and draw as many "Normal" ones with random.seed(42) +
  random.sample over their positions, as the authors do. The authors then select with `df.index.isin(positions)`,
  which mixes positions and index labels; we select by position (12,000 rows, their stated intent), then
  train_test_split(test_size=0.3, random_state=0) as they do (written out in numpy: `shuffle_split`).
- COVID: the authors take the first N of an unsorted os.listdir; we sort each class folder's image file names
  (plain string order; .png/.jpg/.jpeg only, so a stray .DS_Store cannot shift the slices) first. Their slicing is kept: test = first 1,000 COVID, Normal, Viral Pneumonia and first 300
  Lung_Opacity; train = the next 300 of each.
- SIIM, VinDr, NIH-LT: first-N in the label file's own order, exactly as the authors (the file order is the release's).
  SIIM's train-rle.csv has one row per mask: an image with k masks is k rows, kept as the authors keep them.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

FIVE_TASKS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
# GLoRIA's 5x200 rule: the other CheXpert findings must be 0 too ("No Finding" is not looked at)
CHEXPERT_OTHER_FINDINGS = ["Enlarged Cardiomediastinum", "Lung Lesion", "Lung Opacity", "Pneumonia", "Pneumothorax",
                           "Pleural Other", "Fracture", "Support Devices"]
SIIM_CLASSES = ["Normal", "Pneumothorax"]
RSNA_CLASSES = ["Normal", "Pneumonia"]
COVID_CLASSES = ["Normal", "COVID", "Pneumonia", "Lung Opacity"]
# the release's class folders (partition column, folder names as released; "ViralPneumonia" in the authors' README)
COVID_FOLDERS = {"COVID": ("COVID",), "Normal": ("Normal",), "Pneumonia": ("Viral Pneumonia", "ViralPneumonia"),
                 "Lung Opacity": ("Lung_Opacity",)}
NIH_LT_CLASSES = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                  "No Finding", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural Thickening",
                  "Pneumoperitoneum", "Pneumomediastinum", "Subcutaneous Emphysema", "Tortuous Aorta",
                  "Calcification of the Aorta"]
VINDR_CLASSES = ["No Finding", "Pneumonia", "Bronchitis", "Brocho-pneumonia", "Bronchiolitis"]


def one_positive(partition: pd.DataFrame, targets: Sequence[str]) -> pd.DataFrame:
    """The authors' loader filter: rows with exactly one positive target, in partition order, renumbered from 0;
    columns path, group, label (the index of the positive target)."""
    values = partition[list(targets)].to_numpy(dtype=float)
    keep = values.sum(axis=1) == 1
    return pd.DataFrame({"path": partition["path"].to_numpy()[keep],
                         "group": partition["group"].to_numpy()[keep],
                         "label": values[keep].argmax(axis=1).astype(int)})


def _partition(paths, groups, labels: Mapping[str, Sequence], classes: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame({"path": list(paths), "group": [str(g) for g in groups]})
    for name in classes:
        frame[name] = np.asarray(labels[name], dtype=int)
    return frame.reset_index(drop=True)


def chexpert_patient(path: str) -> str:
    return next((part for part in str(path).split("/") if part.startswith("patient")), "")


def chexpert_relpath(path: str) -> str:
    """A train.csv Path ("CheXpert-v1.0/train/patient00001/...") relative to the CheXpert-v1.0 folder."""
    first, _, rest = str(path).partition("/")
    return rest if first.startswith("CheXpert-v1.0") else str(path)


def chexpert_5x200(train: pd.DataFrame, n: int = 200, seed: int = 42) -> pd.DataFrame:
    """GLoRIA's CheXpert 5x200 from CheXpert's train.csv: frontal, NaN -> 0, exactly one of the five tasks = 1 and
    every other finding = 0 (uncertain -1 excludes the row); n per task drawn with a fixed seed from Path order."""
    frame = train.fillna(0)
    frame = frame[frame["Frontal/Lateral"] == "Frontal"].sort_values("Path", kind="stable").reset_index(drop=True)
    picked = []
    for task in FIVE_TASKS:
        mask = frame[task] == 1
        for other in [t for t in FIVE_TASKS if t != task] + CHEXPERT_OTHER_FINDINGS:
            mask &= frame[other] == 0
        picked.append(frame[mask].sample(n=n, random_state=seed))
    chosen = pd.concat(picked)
    return _partition([chexpert_relpath(p) for p in chosen["Path"]], [chexpert_patient(p) for p in chosen["Path"]],
                      {t: (chosen[t] == 1) for t in FIVE_TASKS}, FIVE_TASKS)


def chexpert_from_gloria_file(table: pd.DataFrame) -> pd.DataFrame:
    """GLoRIA's released chexpert_5x200.csv, in its own row order."""
    return _partition([chexpert_relpath(p) for p in table["Path"]], [chexpert_patient(p) for p in table["Path"]],
                      {t: (table[t].fillna(0) == 1) for t in FIVE_TASKS}, FIVE_TASKS)


def mimic_relpath(subject_id, study_id, dicom_id) -> str:
    return f"files/p{str(subject_id)[:2]}/p{subject_id}/s{study_id}/{dicom_id}.jpg"


def mimic_5x200(chexpert: pd.DataFrame, split: pd.DataFrame, metadata: pd.DataFrame, n: int = 200,
                seed: int = 42) -> pd.DataFrame:
    """The authors' MIMIC 5x200: PA/AP images of studies with exactly one of the five tasks = 1 (NaN -> 0), the
    first such image of each subject, then `sample(n, random_state=seed)` per task among the rows whose five tasks
    are exactly that one-hot vector."""
    labels = chexpert.fillna(0)
    labels = labels[(labels[FIVE_TASKS].to_numpy() == 1).sum(axis=1) == 1]
    frontal = metadata.loc[metadata["ViewPosition"].isin(["PA", "AP"]), "dicom_id"]
    rows = split.sort_values(["subject_id", "study_id", "dicom_id"], kind="stable")
    rows = rows[rows["dicom_id"].isin(frontal) & rows["study_id"].isin(labels["study_id"])]
    rows = rows.drop_duplicates("subject_id", keep="first").reset_index(drop=True)
    study_labels = labels.drop_duplicates("study_id").set_index("study_id")[FIVE_TASKS]
    table = pd.concat([rows[["subject_id", "study_id", "dicom_id"]],
                       study_labels.loc[rows["study_id"]].reset_index(drop=True)], axis=1)
    # their per-task selection matches the exact one-hot row, so an uncertain (-1) other task drops the image
    values = table[FIVE_TASKS].to_numpy()
    picked = [table[(values == np.eye(len(FIVE_TASKS))[i]).all(axis=1)].sample(n=n, random_state=seed)
              for i in range(len(FIVE_TASKS))]
    chosen = pd.concat(picked)
    paths = [mimic_relpath(*r) for r in chosen[["subject_id", "study_id", "dicom_id"]].itertuples(index=False)]
    return _partition(paths, chosen["subject_id"], {t: chosen[t] == 1 for t in FIVE_TASKS}, FIVE_TASKS)


def siim(train_rle: pd.DataFrame, image_paths: Mapping[str, str], n_train: int = 2400,
         n_test: int = 600) -> dict[str, pd.DataFrame]:
    """SIIM-ACR: positive when EncodedPixels is not -1; per class the first n_train rows (file order) -> train, the
    next n_test -> test; pneumothorax rows first. An ImageId without a file gets dicom-images-train/<id>.dcm."""
    pixels = train_rle.filter(like="EncodedPixels").iloc[:, 0].astype(str).str.strip()
    positive = (pixels != "-1").to_numpy()
    paths = np.asarray([image_paths.get(i, f"dicom-images-train/{i}.dcm") for i in train_rle["ImageId"]], dtype=object)
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    out = {}
    for subset, (start, stop) in {"train": (0, n_train), "test": (n_train, n_train + n_test)}.items():
        idx = np.concatenate([pos[start:stop], neg[start:stop]])
        out[subset] = _partition(paths[idx], [""] * len(idx),
                                 {"Normal": ~positive[idx], "Pneumothorax": positive[idx]}, SIIM_CLASSES)
    return out


def rsna(detailed: pd.DataFrame, n: int = 6000, seed: int = 42, test_size: float = 0.3,
         split_seed: int = 0) -> dict[str, pd.DataFrame]:
    """RSNA Pneumonia: one row per patientId (first), "Lung Opacity" = Pneumonia, "Normal" = Normal; first n
    pneumonia patients, as many normal ones by random.seed(seed) + random.sample; train_test_split as the authors."""
    frame = detailed.drop_duplicates("patientId", keep="first")
    frame = frame[frame["class"].isin(["Normal", "Lung Opacity"])].reset_index(drop=True)
    pneumonia = (frame["class"] == "Lung Opacity").to_numpy()
    idx_pneumonia = list(np.flatnonzero(pneumonia))[:n]
    idx_normal = [int(i) for i in np.flatnonzero(~pneumonia)]
    random.seed(seed)
    idx_normal = random.sample(idx_normal, len(idx_pneumonia))
    chosen = frame.iloc[sorted(set(idx_pneumonia) | set(idx_normal))]
    train, test = shuffle_split(chosen, test_size, split_seed)
    return {subset: _partition([f"stage_2_train_images/{p}.dcm" for p in part["patientId"]], part["patientId"],
                               {"Normal": part["class"] == "Normal", "Pneumonia": part["class"] == "Lung Opacity"},
                               RSNA_CLASSES)
            for subset, part in (("train", train), ("test", test))}


def shuffle_split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """scikit-learn's train_test_split(frame, test_size=test_size, random_state=seed) without stratification, written
    out (ShuffleSplit: one permutation by RandomState(seed); the first ceil(test_size * n) rows are the test), so that
    the manifest's environment needs no scikit-learn. The tests check it against scikit-learn."""
    n = len(frame)
    n_test = int(np.ceil(test_size * n))
    order = np.random.RandomState(seed).permutation(n)
    return frame.iloc[order[n_test:]], frame.iloc[order[:n_test]]


def covid(listing: Mapping[str, Sequence[str]], n_test: int = 1000, n_train: int = 300,
          n_opacity_test: int = 300) -> dict[str, pd.DataFrame]:
    """COVID-19 Radiography: `listing` maps each class (COVID, Normal, Pneumonia, Lung Opacity) to its files
    (relative paths); each list is sorted, then test = the first n_test (Lung Opacity: n_opacity_test), train = the
    next n_train. Row order: COVID, Normal, Pneumonia, Lung Opacity, as the authors' tables."""
    order = ["COVID", "Normal", "Pneumonia", "Lung Opacity"]
    files = {name: sorted(listing.get(name, ())) for name in order}
    bounds = {"test": {name: (0, n_opacity_test if name == "Lung Opacity" else n_test) for name in order}}
    bounds["train"] = {name: (stop, stop + n_train) for name, (_, stop) in bounds["test"].items()}
    out = {}
    for subset in ("train", "test"):
        paths, classes = [], []
        for name in order:
            start, stop = bounds[subset][name]
            chunk = files[name][start:stop]
            paths += chunk
            classes += [name] * len(chunk)
        out[subset] = _partition(paths, [""] * len(paths), {c: [k == c for k in classes] for c in order},
                                 COVID_CLASSES)
    return out


def nih_lt(single_train: pd.DataFrame, balanced_test: pd.DataFrame,
           balanced_val: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """NIH-CXR-LT: single-label train + balanced-test -> train, balanced-val -> test (the authors' naming), images
    in images/<id>; group = the patient number of the file name (<patient>_<follow-up>.png)."""
    def table(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.rename(columns={"Pleural_Thickening": "Pleural Thickening"}).reset_index(drop=True)
        ids = frame["id"].astype(str)
        columns = {c: frame[c].fillna(0) == 1 if c in frame else [False] * len(frame) for c in NIH_LT_CLASSES}
        return _partition("images/" + ids, ids.str.split("_").str[0], columns, NIH_LT_CLASSES)

    return {"train": table(pd.concat([single_train, balanced_test])), "test": table(balanced_val)}


def vindr(labels_train: pd.DataFrame, labels_test: pd.DataFrame, n_train: int = 350,
          n_test: int = 60) -> dict[str, pd.DataFrame]:
    """VinDr-PCXR: rows with exactly one of the five frequent classes, then the first n (file order) per class in
    class order (No finding, Pneumonia, Bronchitis, Brocho-pneumonia, Bronchiolitis); images <subset>/<id>.dicom."""
    def table(frame: pd.DataFrame, subset: str, n: int) -> pd.DataFrame:
        frame = frame.rename(columns={"No finding": "No Finding"}).reset_index(drop=True)
        values = frame[VINDR_CLASSES].fillna(0).to_numpy(dtype=float)
        frame = frame[values.sum(axis=1) == 1].reset_index(drop=True)
        idx = np.concatenate([np.flatnonzero(frame[c].to_numpy(dtype=float) == 1)[:n] for c in VINDR_CLASSES])
        chosen = frame.iloc[idx]
        return _partition([f"{subset}/{i}.dicom" for i in chosen["image_id"]], [""] * len(chosen),
                          {c: chosen[c] == 1 for c in VINDR_CLASSES}, VINDR_CLASSES)

    return {"train": table(labels_train, "train", n_train), "test": table(labels_test, "test", n_test)}
