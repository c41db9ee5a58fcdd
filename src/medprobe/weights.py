"""Model weights: fetched once (the `fetch_weights` localrule, with network), then used offline (the `embed` rule).

results/weights/{model}.json records every resolved file: role -> {path, sha256, bytes}, plus `tower_sha256` (the
hash of the image tower's weights, so the table can say when two models share one tower).

Where files go: the libraries' own caches. HF_HOME (Hugging Face hub, default ~/.cache/huggingface) and TORCH_HOME
(torchvision and direct URLs, default ~/.cache/torch) are honoured; the config key `weights_dir` sets both for the
workflow. A per-model local checkpoint (config key `local_weights`) is used as it is and never downloaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import medprobe
from medprobe import files as mpfiles
from medprobe.errors import EncoderError

log = logging.getLogger(__name__)

RECORD_VERSION = 1
OPEN_CLIP_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TOWER_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
PROJECTOR_INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
PROJECTOR_SINGLE_NAMES = ("model.safetensors", "pytorch_model.bin", "mm_projector.bin")


class NotCached(EncoderError):
    """A file is not in the local cache and the lookup was offline."""


def cache_env(weights_dir: str | Path | None) -> dict[str, str]:
    """The environment that points every library's cache into `weights_dir` (empty: keep the user's own)."""
    if not weights_dir:
        return {}
    root = Path(weights_dir).resolve()
    return {"HF_HOME": str(root / "huggingface"), "TORCH_HOME": str(root / "torch")}


def offline_env() -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def url_cache_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "medprobe"


def _gated_message(model_id: str, repo: str) -> str:
    return (f"model '{model_id}': the Hugging Face repository {repo} is gated or private and this machine has no "
            f"access. Next steps: (1) open https://huggingface.co/{repo} while logged in and accept its terms; "
            f"(2) create a read token at https://huggingface.co/settings/tokens; (3) export HF_TOKEN=<token> (or run "
            f"`hf auth login`); (4) rerun: snakemake results/weights/{model_id}.json --cores 1")


def hf_file(model_id: str, repo: str, filename: str, *, revision: str | None = None, offline: bool = False) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError)

    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_files_only=offline))
    except GatedRepoError as err:
        raise EncoderError(_gated_message(model_id, repo)) from err
    except RepositoryNotFoundError as err:
        raise EncoderError(_gated_message(model_id, repo) + " (or the repository id is wrong)") from err
    except LocalEntryNotFoundError as err:  # (a subclass of EntryNotFoundError: it must come first)
        if offline:
            raise NotCached(f"model '{model_id}': {repo}/{filename} is not in the Hugging Face cache") from err
        raise EncoderError(f"model '{model_id}': could not download {repo}/{filename} ({err}). Check the network; "
                           f"on a cluster, fetch_weights runs on the login node (it is a localrule)") from err
    except EntryNotFoundError as err:
        raise EncoderError(f"model '{model_id}': {repo} has no file {filename!r}; fix weights.files in "
                           f"config/models.yaml") from err


def hf_first_file(model_id: str, repo: str, names, *, revision=None, offline=False) -> Path:
    """The first of `names` that the repository has (e.g. safetensors before a pickle)."""
    from huggingface_hub.errors import EntryNotFoundError

    last: Exception | None = None
    for name in names:
        try:
            return hf_file(model_id, repo, name, revision=revision, offline=offline)
        except NotCached as err:
            last = err
        except EncoderError as err:
            if not isinstance(err.__cause__, EntryNotFoundError):
                raise
            last = err
    raise (last if isinstance(last, NotCached) else
           EncoderError(f"model '{model_id}': {repo} has none of {', '.join(names)}"))


def url_file(model_id: str, url: str, *, offline: bool = False, dest_dir: Path | None = None,
             hash_prefix: str | None = None) -> Path:
    import torch

    dest_dir = dest_dir or url_cache_dir()
    dest = dest_dir / url.rstrip("/").rsplit("/", 1)[-1]
    if dest.exists():
        return dest
    if offline:
        raise NotCached(f"model '{model_id}': {dest} is not downloaded")
    dest_dir.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", url, dest)
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=hash_prefix, progress=False)
    except Exception as err:  # noqa: BLE001 - any network failure gets the same next step
        raise EncoderError(f"model '{model_id}': could not download {url} ({err}). Check the network, or download "
                           f"it yourself and set config local_weights.{model_id} to the file") from err
    return dest


def _open_clip_files(model_id: str, spec: Mapping, offline: bool) -> dict[str, Path]:
    import open_clip

    weights = spec["weights"]
    if spec["arch"].startswith("hf-hub:"):
        repo = spec["arch"].removeprefix("hf-hub:")
        return {role: hf_file(model_id, repo, name, revision=weights.get("revision"), offline=offline)
                for role, name in weights["files"].items()}
    cfg = open_clip.get_pretrained_cfg(spec["arch"], weights["id"])
    if not cfg:
        raise EncoderError(f"model '{model_id}': open_clip knows no pretrained tag {weights['id']!r} for "
                           f"{spec['arch']!r}; see open_clip.list_pretrained()")
    if cfg.get("hf_hub"):
        repo = cfg["hf_hub"].rstrip("/")
        return {"checkpoint": hf_first_file(model_id, repo, OPEN_CLIP_WEIGHT_NAMES, offline=offline)}
    return {"checkpoint": url_file(model_id, cfg["url"], offline=offline)}


def _torchvision_files(model_id: str, spec: Mapping, offline: bool) -> dict[str, Path]:
    import torch
    import torchvision

    enum = torchvision.models.get_weight(spec["weights"]["id"])
    name = enum.url.rsplit("/", 1)[-1]
    hash_prefix = name.rsplit("-", 1)[-1].split(".")[0] if "-" in name else None
    return {"checkpoint": url_file(model_id, enum.url, offline=offline,
                                   dest_dir=Path(torch.hub.get_dir()) / "checkpoints", hash_prefix=hash_prefix)}


def _hf_files(model_id: str, spec: Mapping, offline: bool) -> dict[str, Path]:
    weights = spec["weights"]
    return {role: hf_file(model_id, weights["id"], name, revision=weights.get("revision"), offline=offline)
            for role, name in weights["files"].items()}


def _llava_files(model_id: str, spec: Mapping, offline: bool) -> dict[str, Path]:
    """The frozen CLIP tower, the checkpoint's config, and only the shard(s) that hold mm_projector."""
    weights = spec["weights"]
    tower_repo = spec["arch"]
    found = {"tower_config": hf_file(model_id, tower_repo, "config.json", offline=offline),
             "tower": hf_first_file(model_id, tower_repo, TOWER_WEIGHT_NAMES, offline=offline),
             "config": hf_file(model_id, weights["id"], "config.json", revision=weights.get("revision"),
                               offline=offline)}
    index_path, not_cached = None, None
    for name in PROJECTOR_INDEX_NAMES:
        try:
            index_path = hf_file(model_id, weights["id"], name, revision=weights.get("revision"), offline=offline)
            break
        except NotCached as err:  # offline: maybe the repository uses the other index name
            not_cached = err
        except EncoderError:
            continue
    if index_path is None:
        try:
            found["projector_0"] = hf_first_file(model_id, weights["id"], PROJECTOR_SINGLE_NAMES,
                                                 revision=weights.get("revision"), offline=offline)
        except NotCached:
            raise not_cached or NotCached(f"model '{model_id}': no projector weights of {weights['id']} cached")
        return found
    weight_map = json.loads(index_path.read_text())["weight_map"]
    shards = sorted({shard for key, shard in weight_map.items() if "mm_projector" in key})
    if not shards:
        raise EncoderError(f"model '{model_id}': {weights['id']} has no mm_projector tensors in {index_path.name}")
    found["index"] = index_path
    for i, shard in enumerate(shards):
        found[f"projector_{i}"] = hf_file(model_id, weights["id"], shard, revision=weights.get("revision"),
                                          offline=offline)
    return found


def resolve_files(model_id: str, spec: Mapping, *, offline: bool, local_path: str | Path | None = None
                  ) -> dict[str, Path]:
    """Every file the model's loader needs, role -> path; offline=True only looks in the caches."""
    source = spec["weights"]["source"]
    if local_path:
        path = Path(local_path)
        if not path.exists():
            raise EncoderError(f"model '{model_id}': local_weights points at {path}, which does not exist")
        try:
            return {"checkpoint": path, **text_tower_files(model_id, spec, offline)}
        except (NotCached, EncoderError) as err:
            log.warning("model '%s': local_weights used; the text tower's files are not available (%s): zero-shot "
                        "will not run for it", model_id, err)
            return {"checkpoint": path}
    if source in ("none", "random"):
        return {}
    if source == "local":
        raise EncoderError(f"model '{model_id}': weights source 'local' needs config local_weights.{model_id}")
    return {**_release_files(model_id, spec, offline), **text_tower_files(model_id, spec, offline)}


def _release_files(model_id: str, spec: Mapping, offline: bool) -> dict[str, Path]:
    """The files of the model's own release, by where it is published."""
    source = spec["weights"]["source"]
    family = spec["family"]
    if family == "llava":
        return _llava_files(model_id, spec, offline)
    if source == "open_clip" or (family == "open_clip" and spec["arch"].startswith("hf-hub:")):
        return _open_clip_files(model_id, spec, offline)
    if source == "torchvision":
        return _torchvision_files(model_id, spec, offline)
    if source == "hf_hub":
        return _hf_files(model_id, spec, offline)
    if source == "url":
        return {"checkpoint": url_file(model_id, spec["weights"]["id"], offline=offline)}
    raise EncoderError(f"model '{model_id}': no way to fetch weights source {source!r}")


def text_tower_files(model_id: str, spec: Mapping, offline: bool) -> dict[str, Path]:
    """The small files a zero-shot text tower needs beyond the checkpoint: a Hugging Face text model's config.json and
    vocab.txt (BiomedCLIP's BiomedBERT), or a tokenizer file the release ships beside its code (CONCH, pinned)."""
    text = spec.get("text_config") if spec.get("text_tower") else None
    if not text:
        return {}
    if "hf_model_name" in text:
        return {"text_config": hf_file(model_id, text["hf_model_name"], "config.json", offline=offline),
                "text_vocab": hf_file(model_id, text["hf_tokenizer_name"], "vocab.txt", offline=offline)}
    if "tokenizer" in text:
        return {"text_tokenizer": url_file(model_id, text["tokenizer"]["url"], offline=offline)}
    return {}


def tower_role(spec: Mapping) -> str:
    return "tower" if spec["family"] == "llava" else "checkpoint"


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def fetch_weights(model_id: str, spec: Mapping, out_json: str | Path, *, local_path: str | Path | None = None,
                  offline: bool = False) -> dict[str, Any]:
    """The `fetch_weights` rule: download (or find) every file, hash it, write the record."""
    found = resolve_files(model_id, spec, offline=offline, local_path=local_path)
    files = {}
    for role, path in sorted(found.items()):
        path = Path(path).resolve()
        log.info("model '%s': %s = %s (%.1f MB); hashing", model_id, role, path, path.stat().st_size / 1e6)
        files[role] = {"path": str(path), "sha256": mpfiles.file_sha256(path), "bytes": path.stat().st_size}
    record = {"record_version": RECORD_VERSION, "medprobe_version": medprobe.__version__, "model_id": model_id,
              "weights": {k: v for k, v in spec["weights"].items() if k != "note"},
              "local_path": str(local_path) if local_path else None, "files": files}
    tower = files.get(tower_role(spec))
    record["tower_sha256"] = tower["sha256"] if tower else None
    mpfiles.write_text(out_json, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def read_record(path: str | Path, model_id: str) -> dict[str, Any]:
    """A fetch record whose files are all still where they were, with the size they had."""
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"model '{model_id}': {path} not found; run fetch_weights first: "
                           f"snakemake {path} --cores 1")
    record = json.loads(path.read_text())
    for role, entry in record["files"].items():
        file = Path(entry["path"])
        if not file.is_file() or file.stat().st_size != entry["bytes"]:
            raise EncoderError(f"model '{model_id}': {file} ({role}) changed or disappeared since fetch_weights; "
                               f"rerun it: snakemake {path} --cores 1 --forcerun fetch_weights")
    return record


def record_paths(record: Mapping[str, Any]) -> dict[str, Path]:
    return {role: Path(entry["path"]) for role, entry in record["files"].items()}


def is_cached(model_id: str, spec: Mapping, local_path: str | Path | None = None) -> bool:
    try:
        resolve_files(model_id, spec, offline=True, local_path=local_path)
        return True
    except NotCached:
        return False
