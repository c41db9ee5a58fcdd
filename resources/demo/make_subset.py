"""Rebuild the shipped demo subsets: the first N files per class folder in sorted() order, bytes unchanged.

    python resources/demo/make_subset.py SOURCE_CLASS_ROOT DEST_DIR [--per-class 40]
"""
import argparse
import shutil
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("source", type=Path, help="folder with one sub-folder per class")
parser.add_argument("dest", type=Path)
parser.add_argument("--per-class", type=int, default=40)
args = parser.parse_args()

for class_dir in sorted(p for p in args.source.iterdir() if p.is_dir()):
    files = sorted(p for p in class_dir.iterdir() if p.is_file() and "_mask" not in p.name)[: args.per_class]
    (args.dest / class_dir.name).mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, args.dest / class_dir.name / f.name)
    print(f"{class_dir.name}: {len(files)}")
