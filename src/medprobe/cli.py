"""The `medprobe` command: look at the registries and build a manifest without running the workflow.

    medprobe models   [--registry FILE] [--format table|tsv]
    medprobe datasets [--config FILE] [--data-root DIR] [--all] [--format table|tsv]
    medprobe manifest --root DIR --out FILE [--dataset ID] [--threads N]
    medprobe doctor   [--configfile FILE ...] [--directory DIR] [--format table|tsv]
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
                               load_yaml, validate, workflow_path)


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
                "local_weights" if weights["source"] == "local" else  # a manual download, named in the config
                "yes" if is_cached(model_id, spec) else "no")
            rows.append([model_id, spec["name"], spec["family"], str(spec["dim"]), spec["feature_point"],
                         "yes" if spec["gated"] else "no", cached, where])
    _print_rows(header, rows, args.format)
    return 0


def dataset_counts(dataset_id: str, spec: dict, root: Path) -> dict[str, int] | None:
    """Images per class from the adapter's listing (no decoding); None when nothing is at `root`.

    Raises MedprobeError when something is there but the adapter cannot read it."""
    from medprobe.datasets import list_samples
    from medprobe.datasets.download import is_present

    if not is_present(root):
        return None
    listing = list_samples(spec["adapter"], root, classes=spec.get("classes"), exclude=spec.get("exclude", ()),
                           dataset_id=dataset_id, spec=spec)
    found: dict[str, int] = {}
    for candidate in listing.candidates:
        found[candidate.class_name] = found.get(candidate.class_name, 0) + 1
    return found


def count_problems(spec: dict, found: dict[str, int]) -> list[str]:
    """How the found counts differ from the registry's expected n and per-class counts (empty: as expected)."""
    n = sum(found.values())
    expected = spec.get("expected", {})
    problems = []
    if "n" in expected and expected["n"] != n:
        problems.append(f"expected {expected['n']}")
    problems += [f"{name} {found.get(name, 0)} (expected {count})"
                 for name, count in (expected.get("counts") or {}).items() if found.get(name, 0) != count]
    return problems


def dataset_status(dataset_id: str, spec: dict, root: Path) -> tuple[str, str]:
    """(found n, status) from the adapter's listing (no decoding): missing, or present with the counts checked."""
    try:
        found = dataset_counts(dataset_id, spec, root)
    except MedprobeError as err:
        return "", f"present, unreadable: {err}"
    if found is None:
        return "", "missing: " + ("the download rule fetches it" if spec.get("download") else "obtain it by hand "
                                  "(see its registry entry)")
    n = sum(found.values())
    problems = count_problems(spec, found)
    if problems:
        return str(n), "present, counts differ: " + "; ".join(problems)
    return str(n), "present, counts as expected" if spec.get("expected", {}) else "present"


def cmd_datasets(args: argparse.Namespace) -> int:
    config = load_yaml(args.config)
    validate(config, "config", str(args.config))
    registry_path = workflow_path(config["registries"]["datasets"], REPO_ROOT, Path.cwd())  # as the workflow reads it
    datasets = load_datasets(registry_path, config.get("custom_datasets") or {})
    data_root = args.data_root or config["data_root"]
    header = ["id", "name", "adapter", "expected_n", "found_n", "status", "root"]
    rows = []
    chosen = list(datasets) if args.all else config["datasets"]
    for dataset_id in chosen:
        spec = datasets[dataset_id]
        root = dataset_root(dataset_id, spec, data_root, config.get("dataset_roots"))
        found, status = dataset_status(dataset_id, spec, root)
        rows.append([dataset_id, spec["name"], spec["adapter"], str(spec.get("expected", {}).get("n", "")), found,
                     status, str(root)])
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
                              dataset_id=args.dataset or Path(args.root).name, spec=spec)
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


def cmd_doctor(args: argparse.Namespace) -> int:
    from medprobe.doctor import exit_status, render_table, render_tsv, run_checks

    checks = run_checks(args.configfile, workdir=args.directory, replace=args.replace_workflow_config)
    print(render_tsv(checks) if args.format == "tsv" else render_table(checks), end="")
    return exit_status(checks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medprobe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the model registry")
    p.add_argument("--registry", default=DEFAULT_MODELS, type=Path)
    p.add_argument("--weights-dir", default=None, help="the config's weights_dir, if you set one")
    p.add_argument("--format", choices=["table", "tsv"], default="table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list the datasets: present or missing, and whether the counts are as expected")
    p.add_argument("--config", default=REPO_ROOT / "config" / "config.yaml", type=Path)
    p.add_argument("--data-root", help="override the config's data_root")
    p.add_argument("--all", action="store_true", help="every registry entry, not only the config's datasets")
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

    p = sub.add_parser("doctor", help="pre-flight check before snakemake (offline): torch and GPU, cached weights, "
                       "datasets and their counts, free disk, tools; exit status 1 on any FAIL")
    p.add_argument("--configfile", "--configfiles", nargs="+", action="extend", default=[], type=Path,
                   metavar="FILE", help="as snakemake's: merged over config/demo.yaml in order, later files winning")
    p.add_argument("--replace-workflow-config", action="store_true",
                   help="as snakemake's: the config files replace config/demo.yaml instead of extending it")
    p.add_argument("--directory", "-d", type=Path, default=None,
                   help="the working directory snakemake will run in (default: this one); data_root, results/ and "
                        "other relative paths are resolved there")
    p.add_argument("--format", choices=["table", "tsv"], default="table")
    p.set_defaults(func=cmd_doctor)

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
