"""A local stand-in for huggingface.co and download.pytorch.org, so that the libraries' own download code writes the
caches a user's machine has, exactly as it writes them (huggingface_hub: snapshots/<commit>/<file> linked to
blobs/<hash>, refs/main; torch.hub: hub/checkpoints/<file>).

It serves on 127.0.0.1 only, with the response headers huggingface_hub reads (X-Repo-Commit, ETag, X-Linked-Etag and
X-Linked-Size for LFS files, X-Error-Code for missing repositories, revisions and files). Every request is logged,
so a test can assert that a run made none.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

LFS_SUFFIXES = (".bin", ".safetensors", ".pth", ".pt", ".tar", ".h5", ".msgpack", ".ckpt")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class HubFile:
    """A file of a repository: its content is written on first request (make(path) writes it), so a repository can
    list a large alternative (a .bin beside a .safetensors) that no one downloads without costing disk."""

    path: Path
    make: Callable[[Path], None] | None = None
    _meta: tuple[str, str, int] | None = None

    def materialise(self) -> Path:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            assert self.make is not None, f"{self.path} has no content"
            self.make(self.path)
        return self.path

    def meta(self, lfs: bool) -> tuple[str, str, int]:
        """(etag, linked etag or '', size) as the hub reports them: LFS files by sha256, others by git blob sha1."""
        if self._meta is None:
            path = self.materialise()
            size = path.stat().st_size
            if lfs:
                self._meta = (file_sha256(path), file_sha256(path), size)
            else:
                self._meta = (git_blob_sha1(path.read_bytes()), "", size)
        return self._meta


@dataclass
class Repo:
    commit: str
    files: dict[str, HubFile] = field(default_factory=dict)


class LocalHub:
    """Repositories by id; `url` is the endpoint (HF_ENDPOINT); `files_url` serves plain files for torch.hub."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.repos: dict[str, Repo] = {}
        self.plain: dict[str, HubFile] = {}
        self.requests: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    # -- content
    def add_file(self, repo: str, name: str, *, data: bytes | None = None, path: Path | None = None,
                 make: Callable[[Path], None] | None = None, commit: str | None = None) -> Path:
        entry = self.repos.setdefault(repo, Repo(commit or hashlib.sha1(repo.encode()).hexdigest()))
        if commit:
            entry.commit = commit
        target = path or self.root / "repos" / repo / name
        if data is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        entry.files[name] = HubFile(target, make)
        return target

    def add_plain(self, name: str, *, path: Path | None = None, make: Callable[[Path], None] | None = None) -> Path:
        target = path or self.root / "files" / name
        self.plain[name] = HubFile(target, make)
        return target

    # -- serving
    @property
    def url(self) -> str:
        assert self._server is not None, "the hub is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def file_url(self, name: str) -> str:
        return f"{self.url}/files/{name}"

    @contextlib.contextmanager
    def running(self) -> Iterator["LocalHub"]:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _fail(self, code: int, error: str, commit: str | None = None):
                self.send_response(code)
                self.send_header("X-Error-Code", error)
                self.send_header("X-Error-Message", error)
                if commit:
                    self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _answer(self, body: bool):
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                hub.requests.append(f"{self.command} {path}")
                if path.startswith("/files/"):
                    entry = hub.plain.get(path.removeprefix("/files/"))
                    if entry is None:
                        return self._fail(404, "EntryNotFound")
                    return self._send(entry.materialise(), {}, body)
                parts = path.strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._fail(404, "RepoNotFound")
                repo_id, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._fail(404, "RepoNotFound")
                if revision not in ("main", repo.commit):
                    return self._fail(404, "RevisionNotFound")
                entry = repo.files.get(name)
                if entry is None:
                    return self._fail(404, "EntryNotFound", repo.commit)
                lfs = name.endswith(LFS_SUFFIXES)
                etag, linked, size = entry.meta(lfs)
                headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"'}
                if linked:
                    headers.update({"X-Linked-Etag": f'"{linked}"', "X-Linked-Size": str(size)})
                return self._send(entry.materialise(), headers, body)

            def _send(self, file: Path, headers: dict[str, str], body: bool):
                self.send_response(200)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(file.stat().st_size))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    with open(file, "rb") as handle:
                        while block := handle.read(1 << 22):
                            self.wfile.write(block)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def hf_download(hub: LocalHub, repo: str, filename: str, hf_home: Path, revision: str = "main") -> Path:
    """What `hf download <repo> <filename>` leaves in HF_HOME: huggingface_hub's own code writes the cache."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=str(Path(hf_home) / "hub"),
                                endpoint=hub.url))


def torch_hub_download(hub: LocalHub, name: str, torch_home: Path) -> Path:
    """What torchvision's first use of a weight enum leaves in TORCH_HOME: torch.hub's own download code."""
    import torch

    dest = Path(torch_home) / "hub" / "checkpoints" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    # load_state_dict_from_url's download step; its hash check is off because these weights are not the release's
    torch.hub.download_url_to_file(hub.file_url(name), str(dest), hash_prefix=None, progress=False)
    return dest
