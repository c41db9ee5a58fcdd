"""The `medprobe` command: look at the registries and build a manifest without running the workflow.

    medprobe models   [--registry FILE] [--format table|tsv]
    medprobe datasets [--config FILE] [--format table|tsv]
    medprobe manifest --root DIR --out FILE [--dataset ID] [--threads N]
    medprobe version
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import medprobe
from medprobe.errors import MedprobeError
from medprobe.registry import (DEFAULT_DATASETS, DEFAULT_MODELS, REPO_ROOT, dataset_root, load_datasets, load_models,
                               load_yaml, validate)


def _print_rows(header: list[str], rows: list[list[str]], fmt: str) -> None:
    if fmt == "tsv":
        print("\t".join(header))
        for row in rows:
            print("\t".join(row))
        return
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def cmd_models(args: argparse.Namespace) -> int:
    from medprobe.weights import cache_env, environment, is_cached

    models = load_models(args.registry)
    header = ["id", "name", "family", "dim", "feature_point", "gated", "cached", "weights"]
    rows = []
    with environment(cache_env(args.weights_dir)):
        for model_id, spec in models.items():
            weights = spec["weights"]
            where = weights["source"] + (f":{weights['id']}" if "id" in weights else "")
            if weights["source"] == "random":
                where += f" (seed {weights['seed']})"
            cached = "n/a" if weights["source"] in ("none", "random") else (
                "yes" if is_cached(model_id, spec) else "no")
            rows.append([model_id, spec["name"], spec["family"], str(spec["dim"]), spec["feature_point"],
                         "yes" if spec["gated"] else "no", cached, where])
    _print_rows(header, rows, args.format)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    config = load_yaml(args.config)
    validate(config, "config", str(args.config))
    registry_path = Path(config["registries"]["datasets"])
    registry_path = registry_path if registry_path.is_absolute() else REPO_ROOT / registry_path
    datasets = load_datasets(registry_path, config.get("custom_datasets") or {})
    header = ["id", "name", "adapter", "classes", "expected_n", "root", "status"]
    rows = []
    for dataset_id, spec in datasets.items():
        root = dataset_root(dataset_id, spec, config["data_root"], config.get("dataset_roots"))
        status = "present" if root.exists() else "missing"
        rows.append([dataset_id, spec["name"], spec["adapter"], str(len(spec["classes"])),
                     str(spec.get("expected", {}).get("n", "")), str(root), status])
    _print_rows(header, rows, args.format)
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from medprobe.manifest import build_manifest, count_mismatches, write_manifest

    spec = {"adapter": "imagefolder", "classes": None, "exclude": []}
    if args.dataset:
        datasets = load_datasets(args.datasets_registry)
        if args.dataset not in datasets:
            raise MedprobeError(f"unknown dataset id '{args.dataset}'. Valid ids: {', '.join(sorted(datasets))}")
        spec = datasets[args.dataset]
    manifest = build_manifest(args.root, adapter=spec["adapter"], classes=spec.get("classes"),
                              exclude=spec.get("exclude", []), duplicates=args.duplicates, threads=args.threads,
                              dataset_id=args.dataset or Path(args.root).name)
    out = Path(args.out)
    issues_out = out.with_name(out.name.removesuffix(".tsv") + ".issues.tsv")
    write_manifest(manifest, out, issues_out)
    print(f"n = {len(manifest.samples)}")
    for name, count in manifest.counts().items():
        print(f"  {name}: {count}")
    if len(manifest.issues):
        print(f"{len(manifest.issues)} issue(s), listed in {issues_out}:")
        for kind, count in manifest.issues["kind"].value_counts().sort_index().items():
            print(f"  {kind}: {count}")
    problems = count_mismatches(manifest, spec.get("expected"))
    for problem in problems:
        print(f"count mismatch: {problem}", file=sys.stderr)
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medprobe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the model registry")
    p.add_argument("--registry", default=DEFAULT_MODELS, type=Path)
    p.add_argument("--weights-dir", default=None, help="the config's weights_dir, if you set one")
    p.add_argument("--format", choices=["table", "tsv"], default="table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list the datasets of a config and whether their folders are present")
    p.add_argument("--config", default=REPO_ROOT / "config" / "config.yaml", type=Path)
    p.add_argument("--format", choices=["table", "tsv"], default="table")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("manifest", help="build one manifest and print n and per-class counts")
    p.add_argument("--root", required=True, type=Path, help="the image folder (one sub-folder per class)")
    p.add_argument("--out", required=True, type=Path, help="manifest TSV; issues go beside it (.issues.tsv)")
    p.add_argument("--dataset", help="a registry id: use its adapter, classes, exclusions and expected counts")
    p.add_argument("--datasets-registry", default=DEFAULT_DATASETS, type=Path)
    p.add_argument("--duplicates", choices=["keep", "drop"], default="keep")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=lambda args: print(medprobe.__version__) or 0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except MedprobeError as err:
        print(f"medprobe: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
