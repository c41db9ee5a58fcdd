"""The model and dataset registries: loading, schema validation, and id checks.

The registries are YAML files (config/models.yaml, config/datasets.yaml) validated against the JSON schemas in
workflow/schemas/. The workflow (workflow/rules/common.smk) and the `medprobe` CLI both load them through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jsonschema
import yaml

from medprobe.errors import RegistryError
from medprobe.paths import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / "workflow" / "schemas"
DEFAULT_MODELS = REPO_ROOT / "config" / "models.yaml"
DEFAULT_DATASETS = REPO_ROOT / "config" / "datasets.yaml"


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"{path}: file not found")
    with path.open(encoding="utf-8") as handle:
        try:
            return yaml.safe_load(handle)
        except yaml.YAMLError as err:
            raise RegistryError(f"{path}: not valid YAML: {err}") from err


def validate(obj: Any, schema: str, source: str) -> None:
    """Validate `obj` against workflow/schemas/<schema>.schema.yaml; raise one message listing every violation."""
    schema_obj = load_yaml(SCHEMA_DIR / f"{schema}.schema.yaml")
    validator = jsonschema.Draft202012Validator(schema_obj)
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = []
        for err in errors:
            where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"  {where}: {err.message}")
        raise RegistryError(f"{source}: does not follow workflow/schemas/{schema}.schema.yaml:\n" + "\n".join(lines))


def _lookup(node: Any, path: Sequence[Any]) -> tuple[bool, Any]:
    for key in path:
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return False, None
    return True, node


def where_set(path: Sequence[Any], configfiles: Sequence[str | Path], config: Mapping[str, Any]) -> str:
    """The config file that holds the value the merged config has at `path` (any of --configfile's files, or the
    Snakefile's configfile), or the command line's --config when no file holds that value."""
    found, value = _lookup(config, path)
    for configfile in reversed([Path(f) for f in configfiles]):
        try:
            held, in_file = _lookup(load_yaml(configfile) or {}, path)
        except RegistryError:
            continue
        if held and (not found or in_file == value):
            return str(configfile)
    return "--config on the command line" if configfiles else "the config"


def check_config(config: Mapping[str, Any], configfiles: Sequence[str | Path] = ()) -> None:
    """The workflow config against its schema and the UMAP grid against umap-learn's own rules, before any job; each
    violation names the file (or --config) that holds the value."""
    from medprobe.umap_settings import settings_problems

    schema_obj = load_yaml(SCHEMA_DIR / "config.schema.yaml")
    validator = jsonschema.Draft202012Validator(schema_obj)
    lines = []
    for err in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        key = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        lines.append(f"  {key}: {err.message} (set in {where_set(list(err.absolute_path), configfiles, config)})")
    umap = config.get("umap") or {}
    if not lines and isinstance(umap, Mapping):
        for problem in settings_problems(umap.get("n_neighbors") or [], umap.get("min_dist") or []):
            key = problem.split(" ", 1)[0].replace(".", "/")
            lines.append(f"  {key}: {problem.split(': ', 1)[1]}; umap-learn refuses it "
                         f"(set in {where_set(key.split('/'), configfiles, config)})")
    if lines:
        raise RegistryError("the workflow config is not valid (workflow/schemas/config.schema.yaml and umap-learn's "
                            "parameter rules):\n" + "\n".join(lines))


def load_models(path: str | Path = DEFAULT_MODELS) -> dict[str, dict]:
    models = load_yaml(path) or {}
    validate(models, "models", str(path))
    for model_id, spec in models.items():
        points = spec["feature_points"]
        if spec["feature_point"] not in points:
            raise RegistryError(f"{path}: model '{model_id}': feature_point '{spec['feature_point']}' is not one of "
                                f"its feature_points ({', '.join(points)})")
        if points[spec["feature_point"]]["dim"] != spec["dim"]:
            raise RegistryError(f"{path}: model '{model_id}': dim {spec['dim']} differs from feature_points."
                                f"{spec['feature_point']}.dim {points[spec['feature_point']]['dim']}")
        source = spec["weights"]["source"]
        if source == "random" and "seed" not in spec["weights"]:
            raise RegistryError(f"{path}: model '{model_id}': random weights need weights.seed")
        if source not in ("none", "random", "local") and "id" not in spec["weights"]:
            raise RegistryError(f"{path}: model '{model_id}': weights source '{source}' needs weights.id")
    return models


def effective_model(model_id: str, spec: Mapping[str, Any], feature_point: str | None = None) -> dict[str, Any]:
    """The registry entry with the config's choice of feature point (and that point's dim) applied."""
    spec = dict(spec)
    if feature_point and feature_point != spec["feature_point"]:
        if feature_point not in spec["feature_points"]:
            raise RegistryError(f"config feature_points.{model_id}: '{feature_point}' is not a feature point of "
                                f"'{model_id}' (choose from {', '.join(spec['feature_points'])})")
        spec["feature_point"] = feature_point
        spec["dim"] = spec["feature_points"][feature_point]["dim"]
    return spec


def load_datasets(path: str | Path = DEFAULT_DATASETS, custom: Mapping[str, dict] | None = None,
                  custom_source: str = "config key custom_datasets") -> dict[str, dict]:
    """The dataset registry, plus the config's `custom_datasets` (same schema; ids must not clash)."""
    datasets = load_yaml(path) or {}
    validate(datasets, "datasets", str(path))
    if custom:
        validate(dict(custom), "datasets", custom_source)
        clash = sorted(set(custom) & set(datasets))
        if clash:
            raise RegistryError(
                f"config key custom_datasets: id(s) {', '.join(clash)} already exist in {path}; rename them"
            )
        datasets = {**datasets, **custom}
    for dataset_id, spec in datasets.items():
        expected = spec.get("expected", {})
        counts = expected.get("counts")
        if counts:
            unknown = sorted(set(counts) - set(spec.get("classes", counts)))
            if unknown:
                raise RegistryError(
                    f"dataset '{dataset_id}': expected.counts names class(es) {', '.join(unknown)} "
                    f"that are not in its classes {spec['classes']}"
                )
            if "n" in expected and sum(counts.values()) != expected["n"]:
                raise RegistryError(
                    f"dataset '{dataset_id}': expected.counts sum to {sum(counts.values())}, "
                    f"but expected.n is {expected['n']}"
                )
    return datasets


def check_ids(requested: Iterable[str], registry: Mapping[str, Any], kind: str, source: str) -> None:
    """Stop on an id that is not in the registry, naming it and listing the valid ones."""
    unknown = [i for i in requested if i not in registry]
    if unknown:
        raise RegistryError(
            f"{source}: unknown {kind} id(s): {', '.join(repr(i) for i in unknown)}. "
            f"Valid {kind} ids: {', '.join(sorted(registry))}"
        )


def resolve_path(path: str | Path, base: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else Path(base) / path


def dataset_root(dataset_id: str, spec: Mapping[str, Any], data_root: str | Path,
                 overrides: Mapping[str, str] | None = None) -> Path:
    """Where a dataset's images live: the config's dataset_roots override, else data_root/<registry root>."""
    if overrides and dataset_id in overrides:
        return Path(overrides[dataset_id])
    return resolve_path(spec["root"], data_root)


def obtain_hint(spec: Mapping[str, Any], data_root: str | Path) -> str:
    return spec.get("obtain", "see the dataset's registry entry").replace("{data_root}", str(data_root))


def workflow_path(path: str | Path, repo_root: str | Path = REPO_ROOT, workdir: str | Path | None = None) -> Path:
    """A file the config names (a registry, the published table): an absolute path as given; a relative one from the
    working directory when it is there (a deployed project's own copy in its config/, or a clone run from its root),
    else from the workflow's own tree (`repo_root`)."""
    path = Path(path)
    if path.is_absolute():
        return path
    if workdir is not None and (Path(workdir) / path).is_file():
        return (Path(workdir) / path).resolve()
    return Path(repo_root) / path


def load_workflow_registries(config: Mapping[str, Any], repo_root: str | Path = REPO_ROOT,
                             source: str = "config", workdir: str | Path | None = None) -> tuple[dict, dict]:
    """Load both registries named by a validated workflow config and check its model and dataset ids. Relative
    registry paths: see `workflow_path`."""
    models = load_models(workflow_path(config["registries"]["models"], repo_root, workdir))
    datasets = load_datasets(workflow_path(config["registries"]["datasets"], repo_root, workdir),
                             config.get("custom_datasets") or {},
                             custom_source=f"custom_datasets in {source}")
    check_ids(config["models"], models, "model", source)
    check_ids(config["datasets"], datasets, "dataset", source)
    check_ids((config.get("transfer_zeroshot") or {}).get("datasets") or [], datasets, "dataset",
              f"{source} (transfer_zeroshot.datasets)")
    for key in ("feature_points", "local_weights"):
        unknown = sorted(set(config.get(key) or {}) - set(models))
        if unknown:
            raise RegistryError(f"{source}: {key} names unknown model id(s) {', '.join(unknown)}. "
                                f"Valid model ids: {', '.join(sorted(models))}")
    models = {m: effective_model(m, spec, (config.get("feature_points") or {}).get(m)) for m, spec in models.items()}
    unknown_roots = sorted(set(config.get("dataset_roots") or {}) - set(datasets))
    if unknown_roots:
        raise RegistryError(
            f"{source}: dataset_roots names unknown dataset id(s) {', '.join(unknown_roots)}. "
            f"Valid dataset ids: {', '.join(sorted(datasets))}"
        )
    return models, datasets
