"""Model weights: fetched once (the `fetch_weights` localrule, with network), then used offline (the `embed` rule).

results/weights/{model}.json records every resolved file: role -> {path, sha256, bytes, and where it came from: the
Hugging Face repository and the commit of the snapshot it sits in, or the URL}, plus `tower_sha256` (the hash of the
image tower's weights, so the table can say when two models share one tower).

Where files go: the libraries' own caches, laid out as the libraries lay them out, so that a cache filled by
`hf download`, open_clip, timm, transformers or torchvision is used as it is. HF_HOME (Hugging Face hub, default
~/.cache/huggingface) and TORCH_HOME (torchvision and direct URLs, default ~/.cache/torch) are honoured; the config key
`weights_dir` sets both for the workflow. A per-model local checkpoint (config key `local_weights`: a file, or a
folder holding a copy of the model's repository) is used as it is and never downloaded.

Every Hugging Face repository a model reads can be pinned to a commit (registry `weights.revisions`: repo -> commit).
A file already in the cache is found without any network access; only missing files are downloaded. Files that only
the zero-shot text tower needs (tokenizers, text configs) never block image embedding: when they cannot be had, the
record lists them under `missing` and zero-shot says how to fetch them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import medprobe
from medprobe import files as mpfiles
from medprobe.errors import EncoderError

log = logging.getLogger(__name__)

RECORD_VERSION = 2
OPEN_CLIP_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TOWER_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
CHECKPOINT_INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
CHECKPOINT_SINGLE_NAMES = ("model.safetensors", "pytorch_model.bin", "mm_projector.bin")
SNAPSHOT = re.compile(r"/snapshots/([0-9a-f]{40})/")


class NotCached(EncoderError):
    """A file is not in the local cache and the lookup was offline."""


@dataclass(frozen=True)
class WeightFile:
    """One file a model needs: where it is published and, for the zero-shot text tower's files, that image embedding
    does not need it."""

    role: str
    names: tuple[str, ...] = ()  # file names in the repository; the first one it has wins (safetensors first)
    repo: str | None = None
    revision: str | None = None
    url: str | None = None
    torch_subdir: str = "medprobe"  # where under the torch hub dir a URL's file goes (torchvision: checkpoints)
    hash_prefix: str | None = None
    text: bool = False

    def destination(self) -> str:
        """Where the file lands in the caches in force (for messages: doctor lists what is missing, and where)."""
        if self.repo:
            from huggingface_hub import constants

            folder = Path(constants.HF_HUB_CACHE) / ("models--" + self.repo.replace("/", "--"))
            snapshot = self.revision or "<commit of main>"
            names = " or ".join(self.names)
            return f"{folder}/snapshots/{snapshot}/{names}"
        return str(url_dest_dir(self.torch_subdir) / url_name(self.url))

    def other_commits(self) -> list[str]:
        """Commits of this repository whose snapshot in the cache has the file (when the pinned one is missing)."""
        if not self.repo:
            return []
        from huggingface_hub import constants

        snapshots = Path(constants.HF_HUB_CACHE) / ("models--" + self.repo.replace("/", "--")) / "snapshots"
        if not snapshots.is_dir():
            return []
        return sorted(d.name for d in snapshots.iterdir() if d.name != self.revision
                      and any((d / name).is_file() for name in self.names))

    def source(self) -> str:
        if self.repo:
            pinned = f" at commit {self.revision}" if self.revision else ""
            return f"https://huggingface.co/{self.repo} ({' or '.join(self.names)}){pinned}"
        return str(self.url)


def cache_env(weights_dir: str | Path | None) -> dict[str, str]:
    """The environment that points every library's cache into `weights_dir` (empty: keep the user's own)."""
    if not weights_dir:
        return {}
    root = Path(weights_dir).resolve()
    return {"HF_HOME": str(root / "huggingface"), "TORCH_HOME": str(root / "torch")}


def offline_env() -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def url_dest_dir(subdir: str = "medprobe") -> Path:
    import torch

    return Path(torch.hub.get_dir()) / subdir


def url_cache_dir() -> Path:
    return url_dest_dir("medprobe")


def url_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _gated_message(model_id: str, repo: str) -> str:
    return (f"model '{model_id}': the Hugging Face repository {repo} is gated or private and this machine has no "
            f"access. Next steps: (1) open https://huggingface.co/{repo} while logged in and accept its terms; "
            f"(2) create a read token at https://huggingface.co/settings/tokens; (3) export HF_TOKEN=<token> (or run "
            f"`hf auth login`); (4) rerun: snakemake results/weights/{model_id}.json --cores 1")


def hf_file(model_id: str, repo: str, filename: str, *, revision: str | None = None, offline: bool = False) -> Path:
    """The file's path in the Hugging Face cache (snapshots/<commit>/<filename>, a link to blobs/<hash>)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_files_only=offline))
    except GatedRepoError as err:
        raise EncoderError(_gated_message(model_id, repo)) from err
    except RevisionNotFoundError as err:
        raise EncoderError(f"model '{model_id}': {repo} has no commit {revision}; fix weights.revisions in "
                           f"config/models.yaml") from err
    except RepositoryNotFoundError as err:
        raise EncoderError(_gated_message(model_id, repo) + " (or the repository id is wrong)") from err
    except LocalEntryNotFoundError as err:  # (a subclass of EntryNotFoundError: it must come first)
        if offline:
            at = f" at commit {revision}" if revision else ""
            raise NotCached(f"model '{model_id}': {repo}/{filename}{at} is not in the Hugging Face cache") from err
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
    dest = dest_dir / url_name(url)
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


# ---------------------------------------------------------------- what each model needs


def revision_of(spec: Mapping, repo: str) -> str | None:
    """The commit pinned for `repo`: weights.revisions, or weights.revision for the release's own repository."""
    weights = spec["weights"]
    pinned = (weights.get("revisions") or {}).get(repo)
    return pinned or (weights.get("revision") if repo == weights.get("id") else None)


def _hub(spec: Mapping, role: str, repo: str, *names: str, text: bool = False) -> WeightFile:
    return WeightFile(role, tuple(names), repo=repo, revision=revision_of(spec, repo), text=text)


def release_repo(spec: Mapping) -> str | None:
    """The Hugging Face repository of the model's own release, where it has one."""
    if str(spec.get("arch", "")).startswith("hf-hub:"):
        return spec["arch"].removeprefix("hf-hub:")
    if spec["weights"]["source"] == "hf_hub":
        return spec["weights"]["id"]
    return None


def planned_files(model_id: str, spec: Mapping) -> list[WeightFile]:
    """Every file the model's loader needs, by where it is published. (The LLaVA family's checkpoint shards follow
    from its index file: see checkpoint_shards.)"""
    weights = spec["weights"]
    source, family = weights["source"], spec["family"]
    if source in ("none", "random"):
        return []
    if source == "local":  # the checkpoint is the local_weights file itself; a text tower's small files are not
        return text_tower_plan(spec)
    if family == "llava":
        tower, main = spec["arch"], weights["id"]
        found = [_hub(spec, "tower_config", tower, "config.json"),
                 _hub(spec, "tower", tower, *TOWER_WEIGHT_NAMES),
                 _hub(spec, "config", main, "config.json"),
                 _hub(spec, "weights_index", main, *CHECKPOINT_INDEX_NAMES, *CHECKPOINT_SINGLE_NAMES)]
    elif family == "open_clip" and spec["arch"].startswith("hf-hub:"):
        repo = release_repo(spec)
        found = [_hub(spec, role, repo, name) for role, name in weights["files"].items()]
    elif source == "open_clip":
        found = [_open_clip_tag_file(model_id, spec)]
    elif source == "torchvision":
        import torchvision

        enum = torchvision.models.get_weight(weights["id"])
        name = url_name(enum.url)
        found = [WeightFile("checkpoint", url=enum.url, torch_subdir="checkpoints",
                            hash_prefix=name.rsplit("-", 1)[-1].split(".")[0] if "-" in name else None)]
    elif source == "hf_hub":
        found = [_hub(spec, role, weights["id"], name) for role, name in weights["files"].items()]
    elif source == "url":
        found = [WeightFile("checkpoint", url=weights["id"])]
    else:
        raise EncoderError(f"model '{model_id}': no way to fetch weights source {source!r}")
    return found + text_tower_plan(spec)


def _open_clip_tag_file(model_id: str, spec: Mapping) -> WeightFile:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec["arch"], spec["weights"]["id"])
    if not cfg:
        raise EncoderError(f"model '{model_id}': open_clip knows no pretrained tag {spec['weights']['id']!r} for "
                           f"{spec['arch']!r}; see open_clip.list_pretrained()")
    if cfg.get("hf_hub"):
        repo, filename = cfg["hf_hub"].rstrip("/"), None
        if repo.count("/") > 1:  # 'org/name/file.bin': open_clip names the file
            repo, filename = repo.rsplit("/", 1)
        names = (filename,) if filename else OPEN_CLIP_WEIGHT_NAMES
        return _hub(spec, "checkpoint", repo, *names)
    return WeightFile("checkpoint", url=cfg["url"])


def text_tower_plan(spec: Mapping) -> list[WeightFile]:
    """The small files a zero-shot text tower needs beyond the checkpoint: a Hugging Face text model's config.json and
    vocab.txt (BiomedCLIP's BiomedBERT, FLAIR's Bio_ClinicalBERT), or a tokenizer file the release ships beside its
    code (CONCH, pinned). Image embedding never needs them."""
    text_head = (spec.get("dlilp_zero_shot") or {}).get("criterion") in ("clip", "unicl", "dlilp")
    text = spec.get("text_config") if spec.get("text_tower") or text_head else None
    if not text:
        return []
    if "hf_model_name" in text:
        return [_hub(spec, "text_config", text["hf_model_name"], "config.json", text=True),
                _hub(spec, "text_vocab", text["hf_tokenizer_name"], "vocab.txt", text=True)]
    if "tokenizer" in text:
        return [WeightFile("text_tokenizer", url=text["tokenizer"]["url"], text=True)]
    return []


def text_tower_files(model_id: str, spec: Mapping, offline: bool) -> dict[str, Path]:
    return {wf.role: _fetch(model_id, wf, offline) for wf in text_tower_plan(spec)}


def _fetch(model_id: str, wf: WeightFile, offline: bool) -> Path:
    """The file in the caches; downloaded (offline=False) only when it is not there already."""
    if wf.repo:
        try:
            return hf_first_file(model_id, wf.repo, wf.names, revision=wf.revision, offline=True)
        except NotCached:
            if offline:
                raise
        return hf_first_file(model_id, wf.repo, wf.names, revision=wf.revision, offline=False)
    return url_file(model_id, wf.url, offline=offline, dest_dir=url_dest_dir(wf.torch_subdir),
                    hash_prefix=wf.hash_prefix)


def _in_folder(model_id: str, folder: Path, wf: WeightFile) -> Path:
    for name in wf.names or (url_name(wf.url),):
        if (folder / name).is_file():
            return folder / name
    raise EncoderError(f"model '{model_id}': local_weights folder {folder} has none of {', '.join(wf.names)}")


def checkpoint_shards(model_id: str, spec: Mapping, found: Mapping[str, Path]) -> list[WeightFile]:
    """LLaVA family: the shard(s) of the checkpoint that hold mm_projector, and also those holding the vision tower
    when the checkpoint's config unfreezes it (then the release's own tower replaces the OpenAI one, as in LLaVA's
    CLIPVisionTower, which loads the tower before the checkpoint when unfreeze_mm_vision_tower is set)."""
    index = Path(found["weights_index"])
    if not index.name.endswith(".index.json"):
        return []  # a single-file checkpoint: weights_index is the checkpoint itself
    config = json.loads(Path(found["config"]).read_text())
    weight_map = json.loads(index.read_text())["weight_map"]
    wanted = ("mm_projector",) + (("vision_tower",) if config.get("unfreeze_mm_vision_tower") else ())
    shards = sorted({shard for key, shard in weight_map.items() if any(w in key for w in wanted)})
    if not shards:
        raise EncoderError(f"model '{model_id}': {spec['weights']['id']} has no mm_projector tensors in {index.name}")
    repo = spec["weights"]["id"]
    return [_hub(spec, f"shard_{i}", repo, shard) for i, shard in enumerate(shards)]


def resolve_files(model_id: str, spec: Mapping, *, offline: bool, local_path: str | Path | None = None,
                  missing: dict[str, str] | None = None) -> dict[str, Path]:
    """Every file the model's loader needs, role -> path; offline=True only looks in the caches.

    `local_path`: a checkpoint file (the release's main checkpoint) or a folder holding a copy of the model's own
    repository (its files are taken from there, the other repositories' from the caches). Text-tower files that
    cannot be had are left out and, when `missing` is given, listed there (role -> why)."""
    found: dict[str, Path] = {}
    if spec["weights"]["source"] == "local" and not local_path:
        raise EncoderError(f"model '{model_id}': weights source 'local' needs config local_weights.{model_id}")
    plan = planned_files(model_id, spec)
    local = Path(local_path) if local_path else None
    if local is not None and not local.exists():
        raise EncoderError(f"model '{model_id}': local_weights points at {local}, which does not exist")
    for wf in plan:
        try:
            found[wf.role] = _locate(model_id, spec, wf, local, offline)
        except EncoderError as err:
            if not wf.text:
                raise
            log.warning("model '%s': the text tower's %s is not available (%s): image embedding is unaffected; "
                        "zero-shot will not run for it", model_id, wf.role, err)
            if missing is not None:
                missing[wf.role] = str(err)
    if local is not None and spec["weights"]["source"] == "local":  # the file is the checkpoint
        found["checkpoint"] = local
    if spec["family"] == "llava" and "weights_index" in found:
        for wf in checkpoint_shards(model_id, spec, found):
            found[wf.role] = _locate(model_id, spec, wf, local, offline)
    return found


def _locate(model_id: str, spec: Mapping, wf: WeightFile, local: Path | None, offline: bool) -> Path:
    """One planned file: from local_weights where it stands in for the release's own files, else the caches."""
    if local is not None and local.is_dir() and wf.repo == release_repo(spec) and not wf.text:
        return _in_folder(model_id, local, wf)
    if local is not None and local.is_file() and wf.role in ("checkpoint", "weights_index"):
        return local
    return _fetch(model_id, wf, offline)


def missing_files(model_id: str, spec: Mapping, local_path: str | Path | None = None) -> list[tuple[WeightFile, str]]:
    """The files the offline embed rule would not find, each with where it should be (call with the caches in
    force); text-tower files are included (marked by WeightFile.text)."""
    local = Path(local_path) if local_path else None
    out, found = [], {}

    def look(wf: WeightFile) -> None:
        try:
            found[wf.role] = _locate(model_id, spec, wf, local, offline=True)
        except EncoderError as err:
            in_local = local is not None and local.is_dir() and wf.repo == release_repo(spec) and not wf.text
            where = str(local / " or ".join(wf.names)) if in_local else wf.destination()
            others = [] if in_local else wf.other_commits()
            if others:  # a download of another commit (say a newer main) is not the pinned release
                where += (f" (the cache has it at commit {', '.join(others)}, not the pinned {wf.revision}: "
                          f"fetch_weights downloads the pinned one; or set weights.revisions.{wf.repo} in "
                          f"config/models.yaml to use yours)")
            out.append((wf, where if isinstance(err, NotCached) or in_local else f"{where} ({err})"))

    for wf in planned_files(model_id, spec):
        look(wf)
    if spec["family"] == "llava" and {"weights_index", "config"} <= set(found):
        for wf in checkpoint_shards(model_id, spec, found):
            look(wf)
    return out


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


def origin(path: Path, plan: Mapping[str, WeightFile], role: str) -> dict[str, str]:
    """Where a resolved file came from: its repository and the commit of its snapshot, or its URL."""
    wf = plan.get(role)
    if wf is None:  # a shard of the LLaVA family, a local file
        match = SNAPSHOT.search(str(path))
        return {"revision": match.group(1)} if match else {}
    if wf.repo:
        match = SNAPSHOT.search(str(path))
        return {"repo": wf.repo, **({"revision": match.group(1)} if match else {})}
    return {"url": wf.url} if wf.url else {}


def fetch_weights(model_id: str, spec: Mapping, out_json: str | Path, *, local_path: str | Path | None = None,
                  offline: bool = False) -> dict[str, Any]:
    """The `fetch_weights` rule: find every file in the caches (or download what is missing), hash it, write the
    record. Paths are kept as the caches name them (a Hugging Face snapshot's file name, not its blob's hash)."""
    missing: dict[str, str] = {}
    found = resolve_files(model_id, spec, offline=offline, local_path=local_path, missing=missing)
    plan = {wf.role: wf for wf in planned_files(model_id, spec)}
    files = {}
    for role, path in sorted(found.items()):
        path = Path(path).absolute()
        size = path.stat().st_size
        log.info("model '%s': %s = %s (%.1f MB); hashing", model_id, role, path, size / 1e6)
        files[role] = {"path": str(path), "sha256": mpfiles.file_sha256(path), "bytes": size,
                       **origin(path, plan, role)}
    record = {"record_version": RECORD_VERSION, "medprobe_version": medprobe.__version__, "model_id": model_id,
              "weights": {k: v for k, v in spec["weights"].items() if k != "note"},
              "local_path": str(local_path) if local_path else None, "files": files, "missing": missing}
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
    if record.get("record_version") != RECORD_VERSION:
        raise EncoderError(f"model '{model_id}': {path} was written by an older medprobe (record version "
                           f"{record.get('record_version')}, now {RECORD_VERSION}); rerun it: snakemake {path} "
                           f"--cores 1 --forcerun fetch_weights")
    for role, entry in record["files"].items():
        file = Path(entry["path"])
        if not file.is_file() or file.stat().st_size != entry["bytes"]:
            raise EncoderError(f"model '{model_id}': {file} ({role}) changed or disappeared since fetch_weights; "
                               f"rerun it: snakemake {path} --cores 1 --forcerun fetch_weights")
    return record


def record_paths(record: Mapping[str, Any]) -> dict[str, Path]:
    return {role: Path(entry["path"]) for role, entry in record["files"].items()}


def is_cached(model_id: str, spec: Mapping, local_path: str | Path | None = None) -> bool:
    """Whether the image side's files are all in the caches (text-tower files do not count)."""
    try:
        resolve_files(model_id, spec, offline=True, local_path=local_path)
        return True
    except NotCached:
        return False
