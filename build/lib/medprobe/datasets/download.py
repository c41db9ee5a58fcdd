"""Getting a dataset onto disk: the `download` rule.

Data already under its root is never downloaded again. Otherwise the registry's public sources are fetched in order:
  url   resumable HTTP download (an interrupted file continues from where it stopped, with a Range request), checked
        against the published md5 / sha256 when there is one, then unpacked (zip, tar) or moved into place;
  git   a shallow fetch of a pinned commit (the commit id is itself a checksum of the whole tree).
Login-only sources stop with the exact command and folder. The rule's record, results/datasets/{dataset}.json, says
which way the data came and the sha256 of every downloaded file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from medprobe import files
from medprobe.errors import DatasetError

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def is_present(root: Path) -> bool:
    root = Path(root)
    return root.is_file() or (root.is_dir() and any(root.iterdir()))


def _digests(path: Path) -> dict[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            md5.update(block)
            sha.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def download_file(url: str, dest: Path, *, md5: str | None = None, sha256: str | None = None,
                  timeout: float = 60.0) -> dict[str, str]:
    """Download `url` to `dest`, resuming `dest.part` if a previous attempt was cut off; verify the checksums."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        return _verify(dest, url, md5, sha256)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = offset > 0 and response.status == 206
            if offset and not resumed:
                log.info("%s: the server ignored the resume request; starting over", url)
            log.info("downloading %s -> %s%s", url, dest, f" (resuming at {offset} bytes)" if resumed else "")
            with part.open("ab" if resumed else "wb") as handle:
                shutil.copyfileobj(response, handle, CHUNK)
    except OSError as err:
        raise DatasetError(f"could not download {url} ({err}); {part} keeps what arrived, rerun to resume") from err
    digests = _verify(part, url, md5, sha256)
    os.replace(part, dest)
    return digests


def _verify(path: Path, url: str, md5: str | None, sha256: str | None) -> dict[str, str]:
    digests = _digests(path)
    for name, expected in (("md5", md5), ("sha256", sha256)):
        if expected and digests[name] != expected.lower():
            path.unlink()
            raise DatasetError(f"{url}: {name} {digests[name]} does not match the published {expected}; the file "
                               f"was removed, rerun to download it again")
    return digests


def _stripped(name: str, strip: int) -> PurePosixPath | None:
    parts = PurePosixPath(name).parts[strip:]
    if not parts:
        return None
    path = PurePosixPath(*parts)
    if path.is_absolute() or ".." in path.parts:
        raise DatasetError(f"archive member {name!r} would land outside the dataset folder; not extracting")
    return path


def extract(archive: Path, dest: Path, kind: str, strip: int = 0) -> None:
    """Unpack into a temporary folder beside `dest`, then move the entries in (an interruption leaves no half tree)."""
    dest = Path(dest)
    tmp = dest.parent / f".{dest.name}.extracting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as handle:
                for info in handle.infolist():
                    target = _stripped(info.filename, strip)
                    if target is None or info.is_dir():
                        continue
                    out = tmp / target
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with handle.open(info) as src, out.open("wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
        elif kind == "tar":
            with tarfile.open(archive) as handle:
                members = []
                for member in handle.getmembers():
                    target = _stripped(member.name, strip)
                    if target is None:
                        continue
                    member.name = str(target)
                    members.append(member)
                handle.extractall(tmp, members=members, filter="data")
        else:
            raise DatasetError(f"unknown archive kind {kind!r}")
        dest.mkdir(parents=True, exist_ok=True)
        for entry in sorted(tmp.iterdir()):
            target = dest / entry.name
            if target.exists():
                raise DatasetError(f"{target} already exists; move it away or delete it, then rerun")
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def git_fetch(url: str, dest: Path, commit: str | None = None) -> str:
    """A shallow fetch of `commit` (or the default branch) into `dest`; returns the checked-out commit id."""
    dest = Path(dest)
    tmp = dest.parent / f".{dest.name}.cloning-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=tmp, capture_output=True, text=True)
        if result.returncode != 0:
            raise DatasetError(f"git {' '.join(args)} failed for {url}: {result.stderr.strip()[-500:]}")
        return result.stdout.strip()

    try:
        git("init", "--quiet")
        git("fetch", "--quiet", "--depth", "1", url, commit or "HEAD")
        git("checkout", "--quiet", "FETCH_HEAD")
        head = git("rev-parse", "HEAD")
        if commit and head != commit:
            raise DatasetError(f"{url}: fetched commit {head}, expected {commit}")
        shutil.rmtree(tmp / ".git")
        if dest.exists() and any(dest.iterdir()):
            raise DatasetError(f"{dest} already exists; move it away or delete it, then rerun")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
        return head
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_source(item: Mapping[str, Any], data_root: Path) -> dict[str, Any]:
    into = Path(data_root) / item.get("into", "")
    if "git" in item:
        head = git_fetch(item["git"], into, item.get("commit"))
        return {"git": item["git"], "commit": head, "into": str(into)}
    name = item.get("file") or item["url"].split("?")[0].rsplit("/", 1)[-1]
    kind = item.get("extract", "none")
    archive = Path(data_root) / ".downloads" / name
    digests = download_file(item["url"], archive, md5=item.get("md5"), sha256=item.get("sha256"))
    if kind == "none":
        into.mkdir(parents=True, exist_ok=True)
        os.replace(archive, into / name)
    else:
        extract(archive, into, kind, int(item.get("strip_components", 0)))
        archive.unlink()
    return {"url": item["url"], "file": name, **digests, "verified": bool(item.get("md5") or item.get("sha256")),
            "into": str(into)}


def prepare_dataset(dataset_id: str, spec: Mapping[str, Any], root: str | Path, data_root: str | Path,
                    out_record: str | Path, *, obtain: str) -> dict[str, Any]:
    """The `download` rule: make sure the dataset is under `root`, write how it got there."""
    root = Path(root)
    record: dict[str, Any] = {"dataset_id": dataset_id, "root": str(root), "sources": []}
    if is_present(root):
        record["status"] = "present"
        log.info("dataset '%s': %s is present; nothing downloaded", dataset_id, root)
    else:
        sources = spec.get("download") or []
        if not sources:
            raise DatasetError(f"dataset '{dataset_id}': {root} does not exist, and its source cannot be fetched "
                               f"automatically (it needs a login or a manual step). Next step: {obtain}. Then rerun.")
        for item in sources:
            record["sources"].append(fetch_source(item, Path(data_root)))
        if not is_present(root):
            raise DatasetError(f"dataset '{dataset_id}': downloaded {len(sources)} source(s), but {root} still does "
                               f"not exist: the release's layout may have changed. Inspect {data_root} and set "
                               f"dataset_roots.{dataset_id} to the right folder.")
        record["status"] = "downloaded"
    files.write_text(out_record, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
