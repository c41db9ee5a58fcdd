"""The download rule offline: a local HTTP server (with Range support) and a local git repository."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import subprocess
import tarfile
import threading
import zipfile

import pytest

from medprobe.datasets.download import download_file, extract, git_fetch, prepare_dataset
from medprobe.errors import DatasetError


class RangeHandler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    log: list[str | None] = []

    def do_GET(self):  # noqa: N802 - http.server's API
        data = self.files.get(self.path.split("?")[0])
        self.log.append(self.headers.get("Range"))
        if data is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.files, RangeHandler.log = {}, []
    yield f"http://127.0.0.1:{httpd.server_address[1]}", RangeHandler
    httpd.shutdown()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return buffer.getvalue()


def test_interrupted_download_resumes_and_is_verified(server, tmp_path):
    url, handler = server
    payload = bytes(range(256)) * 4000
    handler.files["/data.bin"] = payload
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(payload[:300_000])  # what a cut-off attempt left
    digests = download_file(f"{url}/data.bin", dest, md5=hashlib.md5(payload).hexdigest())
    assert dest.read_bytes() == payload and handler.log == ["bytes=300000-"]
    assert digests["sha256"] == hashlib.sha256(payload).hexdigest()
    download_file(f"{url}/data.bin", dest)  # already there: no request
    assert len(handler.log) == 1


def test_checksum_mismatch_removes_the_file(server, tmp_path):
    url, handler = server
    handler.files["/data.bin"] = b"tampered"
    with pytest.raises(DatasetError, match="does not match the published"):
        download_file(f"{url}/data.bin", tmp_path / "data.bin", md5="0" * 32)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


def test_missing_url_keeps_a_clear_error(server, tmp_path):
    url, _ = server
    with pytest.raises(DatasetError, match="rerun to resume"):
        download_file(f"{url}/nope.zip", tmp_path / "nope.zip")


def test_zip_and_tar_extraction_strip_and_refuse_escapes(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"top/Training/a/1.jpg": b"1", "top/Testing/b/2.jpg": b"2"}))
    extract(archive, tmp_path / "out", "zip", strip=1)
    assert (tmp_path / "out" / "Training" / "a" / "1.jpg").read_bytes() == b"1"
    evil = tmp_path / "evil.zip"
    evil.write_bytes(zip_bytes({"../../etc/x": b"x"}))
    with pytest.raises(DatasetError, match="outside"):
        extract(evil, tmp_path / "evil", "zip")
    tar_path = tmp_path / "b.tar.gz"
    with tarfile.open(tar_path, "w:gz") as handle:
        info = tarfile.TarInfo("BreaKHis_v1/histology_slides/x.png")
        info.size = 3
        handle.addfile(info, io.BytesIO(b"png"))
    extract(tar_path, tmp_path / "breakhis", "tar")
    assert (tmp_path / "breakhis" / "BreaKHis_v1" / "histology_slides" / "x.png").read_bytes() == b"png"


def test_prepare_downloads_once_then_never_again(server, tmp_path):
    url, handler = server
    handler.files["/release.zip"] = zip_bytes({"release-1/Training/glioma/1.jpg": b"jpg"})
    spec = {"download": [{"url": f"{url}/release.zip?download=1", "file": "release.zip", "extract": "zip",
                          "into": "brainmr", "strip_components": 1}]}
    root = tmp_path / "data" / "brainmr" / "Training"
    record = prepare_dataset("brainmr", spec, root, tmp_path / "data", tmp_path / "r.json", obtain="by hand")
    assert record["status"] == "downloaded" and (root / "glioma" / "1.jpg").exists()
    assert record["sources"][0]["verified"] is False and len(record["sources"][0]["sha256"]) == 64
    assert not (tmp_path / "data" / ".downloads" / "release.zip").exists()
    again = prepare_dataset("brainmr", spec, root, tmp_path / "data", tmp_path / "r2.json", obtain="by hand")
    assert again["status"] == "present" and len(handler.log) == 1
    assert json.loads((tmp_path / "r2.json").read_text())["status"] == "present"


def test_login_only_source_says_what_to_do(tmp_path):
    hint = "kaggle datasets download -d plameneduardo/sarscov2-ctscan-dataset -p data/sarscov2ct --unzip"
    with pytest.raises(DatasetError) as err:
        prepare_dataset("sarscov2ct", {}, tmp_path / "sarscov2ct", tmp_path, tmp_path / "r.json", obtain=hint)
    assert hint in str(err.value) and "needs a login" in str(err.value)


def test_git_source_is_pinned_to_a_commit(tmp_path):
    source = tmp_path / "upstream"
    source.mkdir()

    def git(*args, cwd=source):
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "--quiet")
    git("config", "uploadpack.allowAnySHA1InWant", "true")
    (source / "Training").mkdir()
    (source / "Training" / "a.jpg").write_bytes(b"v1")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "v1")
    first = git("rev-parse", "HEAD")
    (source / "Training" / "a.jpg").write_bytes(b"v2")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-am", "v2")
    head = git_fetch(f"file://{source}", tmp_path / "data" / "brainmr", commit=first)
    assert head == first and (tmp_path / "data" / "brainmr" / "Training" / "a.jpg").read_bytes() == b"v1"
    assert not (tmp_path / "data" / "brainmr" / ".git").exists()
