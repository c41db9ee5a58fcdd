"""The seven chest X-ray releases of the DLILP study: read each release's label files, rebuild the authors' partition
(medprobe.datasets.cxr_partitions) and list it.

Each sample is `<subset>/<index:06d>/<relpath>`: subset `train` or `test` (the authors' *_train / *_test tables;
CheXpert and MIMIC 5x200 are all `train`), index its position in that subset after the authors' one-positive filter
over the registry's `classes` (their `targets`). The manifest sorts by sample_id, which keeps the partition order.
Every release's adapter name maps to this module in medprobe.datasets.ADAPTERS; list_samples picks its lister by
the entry's `adapter` (LISTERS).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from medprobe.datasets import cxr_partitions as parts
from medprobe.datasets.base import Listing
from medprobe.datasets.csv_table import build_listing
from medprobe.errors import DatasetError


COVID_SUFFIXES = {".png", ".jpg", ".jpeg"}


def read_table(root: Path, *names: str) -> tuple[pd.DataFrame, Path]:
    """The first of `names` (relative to root) that exists, read with pandas (.csv.gz too)."""
    for name in names:
        path = root / name
        if path.is_file():
            return pd.read_csv(path), path
    raise DatasetError(f"{root / names[0]}: label file not found (looked for {', '.join(names)}); it comes with the "
                       f"release: see the registry entry's obtain")


def partition_listing(root: Path, subsets: Mapping[str, pd.DataFrame], classes: Sequence[str],
                      exclude: Sequence[str], source: Path) -> Listing:
    """Candidates `<subset>/<index:06d>/<relpath>` from each subset's partition after the one-positive filter."""
    for subset, partition in subsets.items():
        unknown = [c for c in classes if c not in partition.columns]
        if unknown:
            raise DatasetError(f"{source}: class(es) {', '.join(unknown)} are not columns of the rebuilt {subset} "
                               f"partition ({', '.join(c for c in partition.columns if c not in ('path', 'group'))}); "
                               f"fix `classes:` in the dataset's entry")
    entries = []
    for subset, partition in subsets.items():
        kept = parts.one_positive(partition, classes)
        for index, row in enumerate(kept.itertuples(index=False)):
            entries.append((f"{subset}/{index:06d}/{row.path}", row.path, classes[row.label], row.group))
    return build_listing(root, entries, classes, exclude, source)


def list_chexpert_5x200(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                        spec: Mapping | None = None) -> Listing:
    """GLoRIA's chexpert_5x200.csv when it lies in the root (the authors' file), else rebuilt from train.csv."""
    root = Path(root)
    if (root / "chexpert_5x200.csv").is_file():
        table, source = read_table(root, "chexpert_5x200.csv")
        partition = parts.chexpert_from_gloria_file(table)
    else:
        table, source = read_table(root, "train.csv")
        partition = parts.chexpert_5x200(table)
    return partition_listing(root, {"train": partition}, list(classes or parts.FIVE_TASKS), exclude, source)


def list_mimic_5x200(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                     spec: Mapping | None = None) -> Listing:
    root = Path(root)
    tables = {}
    for key in ("chexpert", "split", "metadata"):
        tables[key], source = read_table(root, f"mimic-cxr-2.0.0-{key}.csv.gz", f"mimic-cxr-2.0.0-{key}.csv")
    partition = parts.mimic_5x200(tables["chexpert"], tables["split"], tables["metadata"])
    return partition_listing(root, {"train": partition}, list(classes or parts.FIVE_TASKS), exclude,
                             source.with_name("mimic-cxr-2.0.0-chexpert.csv"))


def list_siim(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
              spec: Mapping | None = None) -> Listing:
    root = Path(root)
    table, source = read_table(root, "train-rle.csv")
    image_paths = {}
    for folder, dirs, names in os.walk(root / "dicom-images-train"):
        dirs.sort()  # the authors' os.walk order is unsorted; a later file of the same id wins, as in theirs
        for name in sorted(names):
            if "dcm" in name:
                image_paths[name[:-4]] = (Path(folder) / name).relative_to(root).as_posix()
    return partition_listing(root, parts.siim(table, image_paths), list(classes or parts.SIIM_CLASSES), exclude,
                             source)


def list_rsna(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
              spec: Mapping | None = None) -> Listing:
    root = Path(root)
    table, source = read_table(root, "stage_2_detailed_class_info.csv")
    return partition_listing(root, parts.rsna(table), list(classes or parts.RSNA_CLASSES), exclude, source)


def list_covid(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
               spec: Mapping | None = None) -> Listing:
    """COVID-19_Radiography_Dataset: <class folder>/images/*.png (older releases: <class folder>/*.png)."""
    root = Path(root)
    listing = {}
    for name, folders in parts.COVID_FOLDERS.items():
        folder = next((root / f for f in folders if (root / f).is_dir()), None)
        if folder is None:
            raise DatasetError(f"{root}: no class folder {' or '.join(folders)}; expected the unzipped "
                               f"COVID-19_Radiography_Dataset (see the registry entry's obtain)")
        images = folder / "images" if (folder / "images").is_dir() else folder
        listing[name] = [(images / f).relative_to(root).as_posix() for f in os.listdir(images)
                         if Path(f).suffix.lower() in COVID_SUFFIXES and not f.startswith(".")]
    return partition_listing(root, parts.covid(listing), list(classes or parts.COVID_CLASSES), exclude, root)


def list_nih_lt(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                spec: Mapping | None = None) -> Listing:
    root = Path(root)
    train, source = read_table(root, "LongTailCXR/nih-cxr-lt_single-label_train.csv")
    balanced_test, _ = read_table(root, "LongTailCXR/nih-cxr-lt_single-label_balanced-test.csv")
    balanced_val, _ = read_table(root, "LongTailCXR/nih-cxr-lt_single-label_balanced-val.csv")
    return partition_listing(root, parts.nih_lt(train, balanced_test, balanced_val),
                             list(classes or parts.NIH_LT_CLASSES), exclude, source)


def list_vindr(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
               spec: Mapping | None = None) -> Listing:
    root = Path(root)
    train, source = read_table(root, "image_labels_train.csv")
    test, _ = read_table(root, "image_labels_test.csv")
    return partition_listing(root, parts.vindr(train, test), list(classes or parts.VINDR_CLASSES), exclude, source)


LISTERS = {
    "chexpert_5x200": list_chexpert_5x200,
    "mimic_5x200": list_mimic_5x200,
    "siim_pneumothorax": list_siim,
    "rsna_pneumonia": list_rsna,
    "nih_lt": list_nih_lt,
    "vindr_pcxr": list_vindr,
    "covid_radiography": list_covid,
}


def list_samples(root: Path, classes: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 spec: Mapping | None = None) -> Listing:
    """The release named by spec["adapter"] (medprobe.datasets.list_samples always sets it)."""
    adapter = (spec or {}).get("adapter")
    if adapter not in LISTERS:
        raise DatasetError(f"medprobe.datasets.cxr: adapter {adapter!r} is not one of {', '.join(LISTERS)}")
    return LISTERS[adapter](root, classes=classes, exclude=exclude, spec=spec)
