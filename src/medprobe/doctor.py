"""`medprobe doctor`: a pre-flight check of this machine and the configured run, before `snakemake`.

It reads the config the workflow reads (config/demo.yaml, then each --configfile merged over it as Snakemake merges
them) and checks, without touching the network:
  config     the merged config follows its schema and names known models and datasets
  torch/gpu  torch, CUDA, the GPUs and their memory, bf16 (a CPU-only machine is a WARN: embeddings run on the CPU)
  weights    every configured model's weights are in the local caches (weights_dir, HF_HOME, TORCH_HOME) or at its
             local_weights path, resolved by medprobe.weights exactly as the offline embed rule resolves them
  dataset    every configured dataset is at its root, with the registry's image and per-class counts
  disk       free space under results/ covers the embeddings still to write (N x dim x 4 bytes each) plus a margin
  snakemake, conda   the tools the run needs (conda only for --software-deployment-method conda)
Each result is a Check(check, item, status, detail, next_step); the exit status is 1 when any is FAIL.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import os
import re
import shutil
import subprocess
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from medprobe.errors import MedprobeError, RegistryError
from medprobe.registry import (REPO_ROOT, dataset_root, load_workflow_registries, load_yaml, obtain_hint,
                               resolve_path, validate)

OK, WARN, FAIL = "OK", "WARN", "FAIL"
COLUMNS = ("check", "item", "status", "detail", "next_step")
DEFAULT_CONFIG = REPO_ROOT / "config" / "demo.yaml"  # the Snakefile's `configfile:`
FEATURE_BYTES = 4  # store.py writes /features as float32
# Beside the embeddings: UMAP layouts (the paper's 50-setting grid is 400 bytes per image and model, 10-20% of an
# embedding), manifests, splits, probe tables, figures and logs.
MARGIN_FRACTION = 0.25
MARGIN_BYTES = 1 << 30
SNAKEMAKE_MIN_VERSION = (8, 0)  # the Snakefile's min_version


@dataclass(frozen=True)
class Check:
    check: str
    item: str
    status: str
    detail: str
    next_step: str = ""


# ---------------------------------------------------------------- config


def merge_config(base: dict, override: Mapping) -> dict:
    """Snakemake's update_config: nested mappings merge key by key, any other value (lists too) replaces."""
    for key, value in override.items():
        if isinstance(value, Mapping):
            current = base.get(key)
            base[key] = merge_config(dict(current) if isinstance(current, Mapping) else {}, value)
        else:
            base[key] = value
    return base


def config_files(configfiles: Sequence[str | Path] = (), replace: bool = False) -> list[Path]:
    """The files the workflow reads, in merge order: the embedded default first, unless --replace-workflow-config."""
    files = [Path(f) for f in configfiles]
    return files if (replace and files) else [DEFAULT_CONFIG, *files]


def load_config(files: Sequence[Path]) -> dict:
    config: dict = {}
    for path in files:
        data = load_yaml(path) or {}
        if not isinstance(data, Mapping):
            raise RegistryError(f"{path}: a config file must be a mapping of keys, found {type(data).__name__}")
        merge_config(config, data)
    validate(config, "config", ", ".join(str(f) for f in files))
    return config


def inherited_keys(files: Sequence[Path]) -> list[str]:
    """Top-level keys that only the embedded default sets, when the user gave config files of their own."""
    if not files or files[0] != DEFAULT_CONFIG or len(files) == 1:
        return []
    own = set().union(*((load_yaml(f) or {}).keys() for f in files[1:]))
    return sorted(set(load_yaml(DEFAULT_CONFIG) or {}) - own)


# ---------------------------------------------------------------- torch and the GPU


def torch_checks(embed: Mapping[str, Any]) -> list[Check]:
    device, amp = embed.get("device", "auto"), embed.get("amp", "auto")
    try:
        import torch
    except ImportError as err:
        return [Check("torch", "torch", FAIL, f"torch is not importable ({err})",
                      "pip install -e . in this repository (a CUDA build: https://pytorch.org/get-started/locally/), "
                      "or run snakemake with --software-deployment-method conda (workflow/envs/embed.yaml)")]
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    checks = [Check("torch", "torch", OK, f"torch {torch.__version__} ({build})")]
    if not torch.cuda.is_available():
        where = ("this torch is a CPU-only build: install a CUDA build (https://pytorch.org/get-started/locally/)"
                 if not torch.version.cuda else
                 f"check `nvidia-smi` and CUDA_VISIBLE_DEVICES (now {os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
                 f" on this node; on SLURM, ask for a GPU (--gres=gpu:1 or the slurm profile)")
        if device == "cuda":
            checks.append(Check("gpu", "cuda", FAIL, "embed.device is 'cuda' but torch sees no GPU: every embed job "
                                "would stop", f"{where}; or set config key embed.device: auto (CPU fallback)"))
        elif device == "cpu":
            checks.append(Check("gpu", "cuda", OK, "no GPU visible; embed.device: cpu"))
        else:
            checks.append(Check("gpu", "cuda", WARN, "no CUDA GPU visible: embeddings will run on the CPU (fine for "
                                "the demo; hours per dataset for ViT-L, ViT-bigG and the LLaVA towers)", where))
        from medprobe.embed import cpu_has_native_bf16

        native = cpu_has_native_bf16()
        checks.append(Check("bf16", "cpu", OK, "native bf16 on this CPU (AVX512-BF16 or AMX): CNNs embed under bf16"
                            if native else "no native bf16 on this CPU: embeddings in fp32"))
        return checks
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        try:
            free, total = torch.cuda.mem_get_info(index)
            memory = f"{_size(total)} ({_size(free)} free)"
        except RuntimeError:  # e.g. a GPU in exclusive mode held by another process
            memory = _size(props.total_memory)
        checks.append(Check("gpu", f"cuda:{index}", OK,
                            f"{props.name}, {memory}, compute capability {props.major}.{props.minor}"))
    if device == "cpu":
        checks.append(Check("gpu", "embed.device", WARN, "embed.device: cpu leaves the GPU idle",
                            "set config key embed.device: auto"))
    try:
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.3 has no including_emulation
        bf16 = torch.cuda.is_bf16_supported()
    name = torch.cuda.get_device_name(torch.cuda.current_device())
    if bf16:
        checks.append(Check("bf16", "cuda", OK, f"native bf16 on {name}"
                            + (": embed.amp runs the encoders under bf16 autocast" if amp != "off" else "")))
    elif amp == "off":
        checks.append(Check("bf16", "cuda", OK, f"no native bf16 on {name}; embed.amp: off (fp32)"))
    else:
        checks.append(Check("bf16", "cuda", WARN, f"no native bf16 on {name} (pre-Ampere): embed.amp {amp} "
                            "autocasts to bf16, which is emulated there and slower than fp32",
                            "set config key embed.amp: off"))
    return checks


# ---------------------------------------------------------------- weights

HUB_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@contextlib.contextmanager
def offline_caches(weights_dir: Path | None) -> Iterator[None]:
    """The caches the workflow's rules see (weights_dir's, else HF_HOME and TORCH_HOME), with the hub offline."""
    from medprobe.weights import cache_env, environment, offline_env

    with environment({**cache_env(weights_dir), **offline_env()}), _hub_constants_from_environment():
        yield


@contextlib.contextmanager
def _hub_constants_from_environment() -> Iterator[None]:
    """huggingface_hub reads HF_HOME and its friends once, at import; re-read them from the environment in force."""
    try:
        import huggingface_hub.constants as constants
    except ImportError:
        yield
        return
    spec = importlib.util.find_spec("huggingface_hub.constants")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    changed = {name: getattr(constants, name) for name, value in vars(fresh).items()
               if name.isupper() and isinstance(value, (str, bool)) and getattr(constants, name, None) != value}
    for name in changed:
        setattr(constants, name, getattr(fresh, name))
    try:
        yield
    finally:
        for name, value in changed.items():
            setattr(constants, name, value)


def hub_token_present() -> bool:
    """A Hugging Face token in the environment or the token file; huggingface_hub.get_token() is not used because
    it may exchange or refresh a token over the network."""
    if any(os.environ.get(name) for name in HUB_TOKEN_ENV):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    path = Path(constants.HF_TOKEN_PATH)
    return path.is_file() and bool(path.read_text().strip())


def hub_repo(spec: Mapping[str, Any]) -> str | None:
    """The Hugging Face repository whose terms a gated model's weights sit behind."""
    if spec["weights"]["source"] == "hf_hub":
        return spec["weights"]["id"]
    arch = str(spec.get("arch", ""))
    return arch.removeprefix("hf-hub:") if arch.startswith("hf-hub:") else None


def weights_label(spec: Mapping[str, Any]) -> str:
    weights = spec["weights"]
    label = weights["source"] + (f":{weights['id']}" if "id" in weights else "")
    if spec["family"] == "llava":
        label += f" + tower hf_hub:{spec['arch']}"
    return label


def _files_summary(files: Mapping[str, Path]) -> str:
    paths = [Path(p).resolve() for p in files.values()]
    size = sum(p.stat().st_size for p in paths if p.is_file())
    folder = os.path.commonpath([str(p.parent) for p in paths])
    return f"{len(paths)} file(s), {_size(size)}, under {folder}"


def model_weights_check(model_id: str, spec: Mapping[str, Any], *, local_path: Path | None = None,
                        weights_dir: Path | None = None, token: bool = False, record: Path | None = None,
                        config_args: str = "") -> Check:
    """Whether the offline embed rule would find this model's weights; call inside offline_caches()."""
    from medprobe.weights import missing_files, read_record, resolve_files

    source = spec["weights"]["source"]
    key = f"local_weights.{model_id}"
    label = weights_label(spec)
    if local_path is None and source == "none":
        return Check("weights", model_id, OK, "weight-free: no weights needed")
    if local_path is None and source == "random":
        return Check("weights", model_id, OK, f"random initialisation (seed {spec['weights']['seed']}): "
                     "no weights needed")
    if local_path is None and source == "local":
        steps = spec["weights"].get("note") or f"download it from {spec['weights'].get('id', 'its release')}"
        return Check("weights", model_id, FAIL, f"weights source 'local' but config key {key} is not set",
                     steps if key in steps else f"{steps}; then set config key {key}: /path/to/checkpoint")
    if record is not None and record.is_file():
        try:
            read_record(record, model_id)
        except MedprobeError as err:
            return Check("weights", model_id, FAIL, str(err), "rerun fetch_weights as the detail says")
    try:
        if local_path is not None and not Path(local_path).exists():
            raise MedprobeError(f"model '{model_id}': local_weights points at {local_path}, which does not exist")
        missing = missing_files(model_id, spec, local_path)
        image = [(wf, where) for wf, where in missing if not wf.text]
        text = [(wf, where) for wf, where in missing if wf.text]
        if image:
            if record is not None and record.is_file():
                return Check("weights", model_id, OK, f"{label}: fetched already, every file of {record} is in "
                             "place")
            return _not_cached(model_id, spec, _missing_list(image), weights_dir=weights_dir, token=token,
                               config_args=config_args)
        files = resolve_files(model_id, spec, offline=True, local_path=local_path)
    except (MedprobeError, ImportError) as err:
        fix = (f"put the checkpoint at {local_path}, or fix config key {key}" if local_path else
               f"fix the entry '{model_id}' in config/models.yaml, or set config key {key} to a checkpoint")
        return Check("weights", model_id, FAIL, str(err), fix)
    where = f"{key} = {local_path}" if local_path else f"{label}: cached"
    gated = "; gated, and this machine was granted access" if spec.get("gated") and not local_path else ""
    detail = f"{where}, {_files_summary(files)}{gated}"
    if text:
        return Check("weights", model_id, WARN,
                     f"{detail}; image embedding can run, but zero-shot cannot: its text tower needs "
                     f"{_missing_list(text)}",
                     f"snakemake results/weights/{model_id}.json --cores 1{config_args} on a machine with internet, "
                     "or copy those files there; or switch protocols.zeroshot off")
    return Check("weights", model_id, OK, detail)


def _missing_list(missing) -> str:
    """'role (where it goes)' for each missing file."""
    return "; ".join(f"{wf.role} from {wf.source()} -> {where}" for wf, where in missing)


def _not_cached(model_id: str, spec: Mapping[str, Any], reason: str, *, weights_dir: Path | None,
                token: bool, config_args: str = "") -> Check:
    fetch = f"snakemake results/weights/{model_id}.json --cores 1{config_args}"
    local = f"config key local_weights.{model_id}"
    label = weights_label(spec)
    if spec.get("gated"):
        repo = hub_repo(spec)
        terms = (f"accept the licence at https://huggingface.co/{repo} (logged in to huggingface.co)" if repo else
                 f"accept the weights' licence ({spec.get('licence', 'see config/models.yaml')})")
        login = "then `hf auth login` (older huggingface_hub: `huggingface-cli login`) or export HF_TOKEN=<read token>"
        if weights_dir:
            login += (f" (weights_dir makes the workflow's HF_HOME {Path(weights_dir).resolve() / 'huggingface'}: "
                      "a token saved under ~/.cache/huggingface is not seen there, so export HF_TOKEN)")
        state = ("a Hugging Face token is set, so it downloads once the licence is accepted" if token else
                 "no Hugging Face token is set, so fetch_weights would be refused")
        return Check("weights", model_id, WARN if token else FAIL,
                     f"{label} is not cached; missing: {reason}; gated repository: {state}",
                     f"{terms}; {login}; then {fetch} on a machine with internet; or put the checkpoint file at "
                     f"the path you set as {local}")
    cache = f"into weights_dir {Path(weights_dir).resolve()}" if weights_dir else f"into {_cache_dirs()}"
    return Check("weights", model_id, WARN,
                 f"{label} is not cached; missing: {reason}; fetch_weights downloads them when the workflow runs, "
                 f"which needs internet", f"{fetch} on a machine with internet (downloads {cache}), or set {local} to a "
                 f"checkpoint you have")


def caches_check(weights_dir: Path | None, token: bool) -> Check:
    """Where the lookups below looked (call inside offline_caches())."""
    origin = "weights_dir" if weights_dir else "HF_HOME and TORCH_HOME, or their defaults"
    return Check("weights", "caches", OK, f"{_cache_dirs()} ({origin}); Hugging Face token "
                 f"{'found' if token else 'not found'}; looked up offline, nothing downloaded")


def _cache_dirs() -> str:
    import torch
    from huggingface_hub import constants

    return f"Hugging Face hub cache {constants.HF_HUB_CACHE} and torch hub {torch.hub.get_dir()}"


def weights_checks(config: Mapping[str, Any], models: Mapping[str, Mapping], workdir: Path,
                   config_args: str = "") -> list[Check]:
    weights_dir = resolve_path(config["weights_dir"], workdir) if config.get("weights_dir") else None
    local = config.get("local_weights") or {}
    checks = []
    with offline_caches(weights_dir):
        token = hub_token_present()
        if any(models[m]["weights"]["source"] not in ("none", "random") for m in config["models"]):
            checks.append(caches_check(weights_dir, token))
        for model_id in config["models"]:
            local_path = resolve_path(local[model_id], workdir) if local.get(model_id) else None
            checks.append(model_weights_check(model_id, models[model_id], local_path=local_path,
                                              weights_dir=weights_dir, token=token,
                                              record=workdir / "results" / "weights" / f"{model_id}.json",
                                              config_args=config_args))
    return checks


# ---------------------------------------------------------------- datasets


def dataset_check(dataset_id: str, spec: Mapping[str, Any], config: Mapping[str, Any], workdir: Path,
                  config_args: str = "") -> tuple[Check, int | None]:
    """The dataset's check, and its number of images (found, else the registry's expected n, else None)."""
    from medprobe.cli import count_problems, dataset_counts

    data_root = resolve_path(config["data_root"], workdir)
    overrides = {k: str(resolve_path(v, workdir)) for k, v in (config.get("dataset_roots") or {}).items()}
    root = dataset_root(dataset_id, spec, data_root, overrides)
    origin = (f"config key dataset_roots.{dataset_id}" if dataset_id in overrides else
              f"config key data_root ({data_root}) + registry root {spec['root']}")
    expected = spec.get("expected", {})
    try:
        found = dataset_counts(dataset_id, spec, root)
    except MedprobeError as err:
        return Check("dataset", dataset_id, FAIL, f"{root} is there but unreadable: {err}",
                     f"lay the release out as its registry entry says (adapter {spec['adapter']}), or set config key "
                     f"dataset_roots.{dataset_id} to the right folder"), expected.get("n")
    if found is None:
        elsewhere = f"or, if you have it elsewhere, set config key dataset_roots.{dataset_id}"
        if spec.get("download"):
            return Check("dataset", dataset_id, WARN,
                         f"missing: {root} does not exist ({origin}); the download rule fetches it when the workflow "
                         "runs, which needs internet",
                         f"snakemake results/datasets/{dataset_id}.json --cores 1{config_args} on a machine with "
                         "internet; "
                         f"{elsewhere}"), expected.get("n")
        return Check("dataset", dataset_id, FAIL,
                     f"missing: {root} does not exist ({origin}); it cannot be downloaded automatically",
                     f"{obtain_hint(spec, data_root)}; {elsewhere}"), expected.get("n")
    n = sum(found.values())
    per_class = ", ".join(f"{name} {count}" for name, count in found.items())
    problems = count_problems(dict(spec), found)
    if problems:
        stop = config["manifest"]["count_mismatch"] == "error"
        return Check("dataset", dataset_id, FAIL if stop else WARN,
                     f"{n} images at {root} ({per_class}); counts differ from the registry: {'; '.join(problems)}"
                     + ("; the manifest rule stops on this" if stop else ""),
                     f"compare {root} with the release ({obtain_hint(spec, data_root)}), or set config key "
                     f"dataset_roots.{dataset_id} to the complete copy"
                     + ("; or set manifest.count_mismatch: warn to go on with these counts" if stop else "")), n
    verdict = "as expected" if expected else "no expected counts in the registry"
    return Check("dataset", dataset_id, OK, f"{n} images at {root} ({per_class}; {verdict})"), n


# ---------------------------------------------------------------- disk


def planned_embedding_bytes(models: Mapping[str, Mapping], n_images: Mapping[str, int],
                            done: Sequence[tuple[str, str]] = ()) -> int:
    """Bytes of /features still to write: N x dim x 4 (float32) for every (dataset, model) pair not in `done`."""
    skip = set(done)
    return sum(n * int(spec["dim"]) * FEATURE_BYTES for dataset_id, n in n_images.items()
               for model_id, spec in models.items() if (dataset_id, model_id) not in skip)


def margin_bytes(planned: int) -> int:
    return int(planned * MARGIN_FRACTION) + MARGIN_BYTES


def disk_check(results_dir: Path, planned: int, *, n_files: int, n_done: int = 0,
               unknown: Sequence[str] = ()) -> Check:
    probe = Path(results_dir).resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    margin = margin_bytes(planned)
    needed = planned + margin
    detail = (f"{_size(free)} free at {probe}; needed {_size(needed)}: embeddings {_size(planned)} ({n_files} "
              f"file(s) still to write, N images x dim x {FEATURE_BYTES} bytes, float32) + margin {_size(margin)} "
              f"({MARGIN_FRACTION:.0%} + {_size(MARGIN_BYTES)} for UMAP layouts, tables, logs)")
    if n_done:
        detail += f"; {n_done} embedding file(s) already written"
    if free < needed:
        return Check("disk", "results", FAIL, detail + f"; short by {_size(needed - free)}",
                     f"free {_size(needed - free)} on that disk, or make results/ a symlink to a folder on a larger "
                     f"disk (or run snakemake --directory on one)")
    if unknown:
        return Check("disk", "results", WARN, detail + f"; sizes unknown for {', '.join(unknown)} (missing, "
                     "and no expected n in the registry)", "rerun medprobe doctor once those datasets are in place")
    return Check("disk", "results", OK, detail)


def disk_checks(config: Mapping[str, Any], models: Mapping[str, Mapping], n_images: Mapping[str, int | None],
                workdir: Path) -> list[Check]:
    results_dir = workdir / "results"
    configured = {m: models[m] for m in config["models"]}
    known = {d: n for d, n in n_images.items() if n is not None}
    done = [(d, m) for d in known for m in configured
            if (results_dir / "embeddings" / d / f"{m}.h5").is_file()]
    planned = planned_embedding_bytes(configured, known, done)
    return [disk_check(results_dir, planned, n_files=len(known) * len(configured) - len(done), n_done=len(done),
                       unknown=[d for d, n in n_images.items() if n is None])]


# ---------------------------------------------------------------- tools


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:2])


def tool_checks() -> list[Check]:
    checks = []
    exe = shutil.which("snakemake")
    try:
        import snakemake

        version, where = snakemake.__version__, f"importable here, command {exe or 'not on PATH'}"
    except ImportError:
        if exe is None:
            return [Check("snakemake", "snakemake", FAIL, "snakemake is neither importable here nor on PATH",
                          "pip install -e . in this repository (or pip install 'snakemake>=8')"), *conda_checks()]
        result = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
        version, where = result.stdout.strip() or "unknown", f"command {exe}"
    minimum = ".".join(map(str, SNAKEMAKE_MIN_VERSION))
    if _version_tuple(version) < SNAKEMAKE_MIN_VERSION:
        checks.append(Check("snakemake", "snakemake", FAIL, f"snakemake {version} ({where}) is older than the "
                            f"Snakefile's min_version {minimum}", f"pip install -U 'snakemake>={minimum}'"))
    elif exe is None:
        checks.append(Check("snakemake", "snakemake", WARN, f"snakemake {version} is importable but no `snakemake` "
                            "command is on PATH", "activate this environment (e.g. source venv/bin/activate), or "
                            "run python -m snakemake"))
    else:
        checks.append(Check("snakemake", "snakemake", OK, f"snakemake {version} ({where})"))
    return checks + conda_checks()


def conda_checks() -> list[Check]:
    found = [f"{name} at {path}" for name in ("conda", "mamba") if (path := shutil.which(name))]
    if found:
        return [Check("conda", "conda", OK, "; ".join(found) + " (for --software-deployment-method conda)")]
    return [Check("conda", "conda", WARN, "neither conda nor mamba is on PATH: needed only for "
                  "--software-deployment-method conda (the workflow/envs/*.yaml environments)",
                  "install Miniforge (https://conda-forge.org/download/), or run without "
                  "--software-deployment-method conda in this environment (pip install -e .)")]


# ---------------------------------------------------------------- all of it


def run_checks(configfiles: Sequence[str | Path] = (), *, workdir: str | Path | None = None,
               replace: bool = False) -> list[Check]:
    """Every check, in the order of the report; nothing is downloaded and nothing is written."""
    workdir = Path(workdir or Path.cwd()).resolve()
    files = config_files(configfiles, replace)
    label = ", ".join(_shown(f) for f in files)
    # the next steps' snakemake commands must read the same config in the same working directory
    config_args = (f" --configfile {' '.join(_shown(Path(f)) for f in configfiles)}" if configfiles else "") + (
        " --replace-workflow-config" if replace and configfiles else "") + (
        f" --directory {workdir}" if workdir != Path.cwd().resolve() else "")
    try:
        config = load_config(files)
        models, datasets = load_workflow_registries(config, REPO_ROOT, source=f"config ({label})",
                                                    workdir=workdir)
        inherited = inherited_keys(files)
    except MedprobeError as err:
        return [Check("config", label, FAIL, str(err), f"fix the file or key the detail names (every key is "
                      f"documented in {REPO_ROOT / 'config' / 'config.yaml'})"), *torch_checks({}), *tool_checks()]
    detail = (f"{len(config['models'])} model(s) x {len(config['datasets'])} dataset(s); working directory "
              f"{workdir}")
    checks = [Check("config", label, OK, detail)]
    if inherited:
        checks = [Check("config", label, WARN, f"{detail}; keys taken from the embedded default {DEFAULT_CONFIG.name}"
                        f": {', '.join(inherited)}", "set them in your config file (config/config.yaml sets "
                        "every key), or run with --replace-workflow-config")]
    checks += torch_checks(config.get("embed") or {})
    checks += weights_checks(config, models, workdir, config_args)
    n_images = {}
    for dataset_id in config["datasets"]:
        check, n_images[dataset_id] = dataset_check(dataset_id, datasets[dataset_id], config, workdir, config_args)
        checks.append(check)
    checks += disk_checks(config, models, n_images, workdir)
    checks += tool_checks()
    return checks


def exit_status(checks: Sequence[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", "; ", text.strip()).replace("\t", " ")


def render_tsv(checks: Sequence[Check]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for check in checks:
        writer.writerow([_one_line(str(x)) for x in astuple(check)])
    return out.getvalue()


def render_table(checks: Sequence[Check]) -> str:
    """One line per check (status, check, item, detail), the next step indented below each WARN and FAIL."""
    width_check = max(len(c.check) for c in checks)
    width_item = max((len(c.item) for c in checks if c.check != "config"), default=0)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<4}  {c.check:<{width_check}}  {c.item:<{width_item}}  {_one_line(c.detail)}")
        if c.next_step:
            lines.append(f"{'':<4}  {'':<{width_check}}  {'':<{width_item}}  -> {_one_line(c.next_step)}")
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    verdict = "not ready: fix every FAIL above" if counts[FAIL] else "ready to run snakemake"
    lines.append(f"{counts[OK]} OK, {counts[WARN]} WARN, {counts[FAIL]} FAIL: {verdict}")
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"

