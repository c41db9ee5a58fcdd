"""`medprobe doctor`, offline and without a GPU: config merging as Snakemake merges, weights found in faked caches,
dataset roots and counts, the disk plan, the report formats and the exit status."""

import io
import shutil
import socket
from collections import namedtuple
from types import SimpleNamespace

import huggingface_hub.constants  # noqa: F401 - imported first, as in a long session: doctor must still re-read HF_HOME
import pandas as pd
import pytest
import torch
import yaml

from conftest import DEMO, copy_demo_subset
from medprobe import doctor
from medprobe.cli import main
from medprobe.doctor import (COLUMNS, FAIL, OK, WARN, Check, config_files, dataset_check, disk_check, disk_checks,
                             load_config, merge_config, model_weights_check, offline_caches,
                             planned_embedding_bytes, render_table, render_tsv, run_checks, torch_checks,
                             weights_checks)
from medprobe.registry import load_workflow_registries

Usage = namedtuple("Usage", "total used free")
GiB = 1 << 30


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails the test: the doctor must never touch the network."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty HF_HOME and TORCH_HOME, no token."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
                 "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return SimpleNamespace(hf=tmp_path / "hf", torch=tmp_path / "torch")


def pinned(repo):
    """The commit the registry pins a repository to (what a download of the release leaves in the cache)."""
    models = load_workflow_registries(load_config(config_files(())))[0]
    for spec in models.values():
        if repo in (spec["weights"].get("revisions") or {}):
            return spec["weights"]["revisions"][repo]
    return "0123456789abcdef0123456789abcdef01234567"


def fake_hub_file(hub_cache, repo, filename, data=b"weights", commit=None):
    """A file laid out as huggingface_hub caches it: refs/main -> snapshots/<commit>/<filename>."""
    commit = commit or pinned(repo)
    folder = hub_cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    path = folder / "snapshots" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fake_flair(hub_cache):
    """FLAIR's checkpoint and the two Bio_ClinicalBERT files its zero-shot text tower is built from."""
    for name in ("config.json", "vocab.txt"):
        fake_hub_file(hub_cache, "emilyalsentzer/Bio_ClinicalBERT", name)
    return fake_hub_file(hub_cache, "jusiro2/FLAIR", "model.safetensors")


def write_config(path, **keys):
    path.write_text(yaml.safe_dump(keys))
    return path


def registries(*configfiles):
    config = load_config(config_files(configfiles))
    models, datasets = load_workflow_registries(config)
    return config, models, datasets


def by_item(checks, check):
    return {c.item: c for c in checks if c.check == check}


# ---------------------------------------------------------------- config


def test_merge_config_is_snakemakes_update_config():
    from snakemake.utils import update_config

    base = {"a": {"x": 1, "y": {"deep": 1, "keep": 2}}, "l": [1, 2], "s": "old", "m": 5}
    over = {"a": {"y": {"deep": 3}, "z": 4}, "l": [3], "s": {"now": "a mapping"}, "n": None}
    expected = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    update_config(expected, over)
    assert merge_config({"a": {"x": 1, "y": {"deep": 1, "keep": 2}}, "l": [1, 2], "s": "old", "m": 5},
                        over) == expected
    assert expected["a"] == {"x": 1, "y": {"deep": 3, "keep": 2}, "z": 4} and expected["l"] == [3]


def test_config_files_come_after_the_embedded_default_and_later_ones_win(tmp_path, repo):
    first = write_config(tmp_path / "first.yaml", models=["pixels"], embed={"device": "cpu"})
    second = write_config(tmp_path / "second.yaml", embed={"threads": 1})
    files = config_files([first, second])
    assert files == [repo / "config" / "demo.yaml", first, second]
    config = load_config(files)
    assert config["models"] == ["pixels"] and config["datasets"] == ["brainmr_demo", "busi_demo"]
    assert config["embed"] == {"device": "cpu", "threads": 1, "max_failed": 0, "amp": "off", "jpeg_draft": False,
                               "channels_last": False}
    assert config_files([first], replace=True) == [first]


def test_inherited_keys_are_a_warning(tmp_path):
    user = write_config(tmp_path / "user.yaml", models=["pixels"], datasets=["brainmr_demo"])
    checks = [c for c in run_checks([user], workdir=tmp_path) if c.check == "config"]
    assert len(checks) == 1 and checks[0].status == WARN
    assert "data_root" in checks[0].detail and "models" not in checks[0].detail.split(": ")[-1]


def test_an_invalid_config_fails_with_the_key(tmp_path, capsys):
    bad = write_config(tmp_path / "bad.yaml", models=["pixels", "no_such_model"])
    checks = run_checks([bad], workdir=tmp_path)
    assert checks[0].check == "config" and checks[0].status == FAIL and "no_such_model" in checks[0].detail
    assert main(["doctor", "--configfile", str(bad), "--directory", str(tmp_path)]) == 1


# ---------------------------------------------------------------- torch and the GPU


def test_cpu_only_is_a_warning_not_a_failure(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows = by_item(torch_checks({"device": "auto", "amp": "auto"}), "gpu")
    assert rows["cuda"].status == WARN and "run on the CPU" in rows["cuda"].detail and rows["cuda"].next_step
    assert by_item(torch_checks({"device": "cuda"}), "gpu")["cuda"].status == FAIL
    assert by_item(torch_checks({"device": "cpu"}), "gpu")["cuda"].status == OK


def test_gpu_name_memory_and_bf16(monkeypatch):
    props = SimpleNamespace(name="Fake A100", total_memory=80 * GiB, major=8, minor=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (70 * GiB, 80 * GiB))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: props.name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    checks = torch_checks({"device": "auto", "amp": "auto"})
    gpu = by_item(checks, "gpu")["cuda:0"]
    assert gpu.status == OK and "Fake A100" in gpu.detail and "80.0 GiB (70.0 GiB free)" in gpu.detail
    assert by_item(checks, "bf16")["cuda"].status == OK
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    bf16 = by_item(torch_checks({"device": "auto", "amp": "auto"}), "bf16")["cuda"]
    assert bf16.status == WARN and "embed.amp: off" in bf16.next_step
    assert by_item(torch_checks({"device": "auto", "amp": "off"}), "bf16")["cuda"].status == OK


# ---------------------------------------------------------------- weights


def test_weight_free_models_are_ok(caches, tmp_path):
    config, models, _ = registries()
    checks = by_item(weights_checks(config, models, tmp_path), "weights")
    assert set(checks) == {"pixels", "resnet50_random"}  # no cache line: nothing to look up
    assert all(c.status == OK for c in checks.values())


def test_hub_model_not_cached_then_cached(caches, tmp_path):
    _, models, _ = registries()
    hub_cache = huggingface_hub.constants.HF_HUB_CACHE
    with offline_caches(None):
        before = model_weights_check("flair", models["flair"])
    assert huggingface_hub.constants.HF_HUB_CACHE == hub_cache  # restored: the session's hub settings are untouched
    assert before.status == WARN and before.item == "flair" and "jusiro2/FLAIR" in before.detail
    assert "snakemake results/weights/flair.json" in before.next_step and "local_weights.flair" in before.next_step
    snapshot = "snapshots/5f6bdd0a068353dc41a896ba3abdd7c0f6d35938/model.safetensors"  # the registry's pin
    assert f"models--jusiro2--FLAIR/{snapshot}" in before.detail  # where the missing file goes
    other = fake_hub_file(caches.hf / "hub", "jusiro2/FLAIR", "model.safetensors", commit="ab" * 20)
    with offline_caches(None):  # another commit of the repository is not the pinned release
        elsewhere = model_weights_check("flair", models["flair"])
    assert elsewhere.status == WARN and "the cache has it at commit " + "ab" * 20 in elsewhere.detail
    assert "weights.revisions.jusiro2/FLAIR" in elsewhere.detail
    shutil.rmtree(other.parents[2])
    fake_hub_file(caches.hf / "hub", "jusiro2/FLAIR", "model.safetensors")
    with offline_caches(None):  # the image tower is there; zero-shot's text tower files are not
        partial = model_weights_check("flair", models["flair"])
    assert partial.status == WARN and "image embedding can run" in partial.detail
    assert "emilyalsentzer/Bio_ClinicalBERT" in partial.detail and "vocab.txt" in partial.detail
    fake_flair(caches.hf / "hub")
    with offline_caches(None):
        after = model_weights_check("flair", models["flair"])
    assert after.status == OK and "3 file(s)" in after.detail and str(caches.hf / "hub") in after.detail


def test_torchvision_model_cached_under_torch_home(caches, tmp_path):
    import torchvision

    _, models, _ = registries()
    with offline_caches(None):
        assert model_weights_check("resnet50", models["resnet50"]).status == WARN
    url = torchvision.models.get_weight(models["resnet50"]["weights"]["id"]).url
    checkpoint = caches.torch / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"x" * 2048)
    with offline_caches(None):
        check = model_weights_check("resnet50", models["resnet50"])
    assert check.status == OK and "1 file(s), 2.0 KiB" in check.detail


def test_weights_dir_and_local_weights_from_the_config(caches, tmp_path):
    fake_flair(tmp_path / "w" / "huggingface" / "hub")
    (tmp_path / "uni.bin").write_bytes(b"uni")
    user = write_config(tmp_path / "user.yaml", models=["flair", "uni", "conch"], weights_dir="w",
                        local_weights={"uni": "uni.bin", "conch": "nowhere/conch.bin"})
    config, models, _ = registries(user)
    rows = by_item(weights_checks(config, models, tmp_path), "weights")
    assert str(tmp_path / "w" / "huggingface" / "hub") in rows["caches"].detail
    assert rows["flair"].status == OK  # found only under weights_dir, not in HF_HOME
    assert rows["uni"].status == OK and "local_weights.uni" in rows["uni"].detail
    assert rows["conch"].status == FAIL and str(tmp_path / "nowhere" / "conch.bin") in rows["conch"].next_step
    with offline_caches(None):  # without weights_dir, the same model is not found
        assert model_weights_check("flair", models["flair"]).status == WARN


def test_gated_model_says_accept_the_licence_and_log_in(caches, monkeypatch):
    _, models, _ = registries()
    with offline_caches(None):
        no_token = model_weights_check("uni", models["uni"], token=doctor.hub_token_present())
    assert no_token.status == FAIL and "MahmoodLab/UNI" in no_token.detail and "gated" in no_token.detail
    for step in ("https://huggingface.co/MahmoodLab/UNI", "accept the licence", "hf auth login", "HF_TOKEN",
                 "local_weights.uni", "snakemake results/weights/uni.json"):
        assert step in no_token.next_step
    (caches.hf / "token").parent.mkdir(parents=True, exist_ok=True)
    (caches.hf / "token").write_text("hf_fake\n")  # `hf auth login` leaves the token here
    with offline_caches(None):
        with_token = model_weights_check("uni", models["uni"], token=doctor.hub_token_present())
    assert with_token.status == WARN and "accept the licence" in with_token.next_step


# ---------------------------------------------------------------- datasets


def test_demo_datasets_pass_with_their_counts(repo):
    config, _, datasets = registries()
    brain, n_brain = dataset_check("brainmr_demo", datasets["brainmr_demo"], config, repo)
    busi, n_busi = dataset_check("busi_demo", datasets["busi_demo"], config, repo)
    assert (brain.status, n_brain, busi.status, n_busi) == (OK, 160, OK, 120)
    assert "glioma_tumor 40, meningioma_tumor 40, no_tumor 40, pituitary_tumor 40" in brain.detail
    assert "benign 40, malignant 40, normal 40" in busi.detail and "as expected" in busi.detail


def test_missing_root_fails_naming_the_root_and_the_config_key(tmp_path):
    user = write_config(tmp_path / "user.yaml", data_root=str(tmp_path / "data"),
                        datasets=["sarscov2ct", "brainmr", "busi_demo"],
                        dataset_roots={"busi_demo": str(tmp_path / "elsewhere")})
    config, _, datasets = registries(user)
    manual, n = dataset_check("sarscov2ct", datasets["sarscov2ct"], config, tmp_path)
    assert manual.status == FAIL and n == 2482
    assert str(tmp_path / "data" / "sarscov2ct") in manual.detail and "data_root" in manual.detail
    assert "kaggle datasets download" in manual.next_step and "dataset_roots.sarscov2ct" in manual.next_step
    override, _ = dataset_check("busi_demo", datasets["busi_demo"], config, tmp_path)
    assert override.status == FAIL and "config key dataset_roots.busi_demo" in override.detail
    downloadable, _ = dataset_check("brainmr", datasets["brainmr"], config, tmp_path)
    assert downloadable.status == WARN
    assert "snakemake results/datasets/brainmr.json --cores 1" in downloadable.next_step


def test_next_steps_name_the_same_config_and_directory(tmp_path):
    user = write_config(tmp_path / "user.yaml", data_root="data", datasets=["brainmr"])
    rows = by_item(run_checks([user], workdir=tmp_path / "run"), "dataset")
    assert rows["brainmr"].status == WARN and str(tmp_path / "run" / "data" / "brainmr") in rows["brainmr"].detail
    assert (f"snakemake results/datasets/brainmr.json --cores 1 --configfile {user} --directory {tmp_path / 'run'}"
            in rows["brainmr"].next_step)


def test_counts_that_differ_fail_or_warn_as_the_manifest_would(tmp_path):
    root = copy_demo_subset(tmp_path / "tiny", per_class=2, classes=("glioma_tumor", "no_tumor"))
    custom = {"tiny": {"name": "Tiny", "adapter": "imagefolder", "root": str(root), "licence": "MIT",
                       "classes": ["glioma_tumor", "no_tumor"],
                       "expected": {"n": 5, "counts": {"glioma_tumor": 3, "no_tumor": 2}}}}
    for mode, status in (("error", FAIL), ("warn", WARN)):
        user = write_config(tmp_path / f"{mode}.yaml", datasets=["tiny"], custom_datasets=custom,
                            manifest={"count_mismatch": mode})
        config, _, datasets = registries(user)
        check, n = dataset_check("tiny", datasets["tiny"], config, tmp_path)
        assert (check.status, n) == (status, 4) and "glioma_tumor 2 (expected 3)" in check.detail


# ---------------------------------------------------------------- disk


def test_planned_size_is_n_times_dim_times_4(tmp_path):
    user = write_config(tmp_path / "user.yaml", data_root=str(DEMO), models=["pixels", "flair"],
                        feature_points={"flair": "backbone"})
    config, models, _ = registries(user)
    n_images = {"brainmr_demo": 160, "busi_demo": 120}
    configured = {m: models[m] for m in config["models"]}
    expected = (160 + 120) * (1024 + 2048) * 4  # flair's backbone point is 2048-d, not its default 512
    assert planned_embedding_bytes(configured, n_images) == expected == 3_440_640
    done = tmp_path / "results" / "embeddings" / "brainmr_demo" / "pixels.h5"
    done.parent.mkdir(parents=True)
    done.touch()
    check = disk_checks(config, models, n_images, tmp_path)[0]
    assert check.status == OK and "3 file(s) still to write" in check.detail
    assert planned_embedding_bytes(configured, n_images, [("brainmr_demo", "pixels")]) == expected - 160 * 1024 * 4


def test_disk_fails_below_the_planned_size_plus_margin(tmp_path, monkeypatch):
    planned = 3_440_640
    needed = planned + doctor.margin_bytes(planned)
    assert needed == planned + planned // 4 + GiB
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 * GiB, 0, needed - 1))
    short = disk_check(tmp_path / "results", planned, n_files=4)
    assert short.status == FAIL and "short by 1 bytes" in short.detail and "results/" in short.next_step
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 * GiB, 0, needed))
    assert disk_check(tmp_path / "results", planned, n_files=4).status == OK
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 * GiB, 0, 1000))
    assert disk_check(tmp_path / "results", planned, n_files=4).status == FAIL


# ---------------------------------------------------------------- the command


def test_cli_exit_status_and_tsv(tmp_path, monkeypatch, capsys, caches):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(100 * GiB, 0, 50 * GiB))
    good = write_config(tmp_path / "good.yaml", data_root=str(DEMO))
    assert main(["doctor", "--configfile", str(good), "--directory", str(tmp_path), "--format", "tsv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), sep="\t", keep_default_na=False)
    assert list(table.columns) == list(COLUMNS) and set(table["status"]) <= {OK, WARN}
    datasets = table[table["check"] == "dataset"].set_index("item")
    assert list(datasets.index) == ["brainmr_demo", "busi_demo"] and set(datasets["status"]) == {OK}
    assert (table.loc[table["status"] == WARN, "next_step"] != "").all()

    bad = write_config(tmp_path / "bad.yaml", data_root=str(tmp_path / "empty"))
    assert main(["doctor", "--configfile", str(bad), "--directory", str(tmp_path), "--format", "tsv"]) == 1
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), sep="\t", keep_default_na=False)
    fails = table[table["status"] == FAIL]
    assert set(fails["item"]) == {"brainmr_demo", "busi_demo"} and (fails["next_step"] != "").all()

    assert main(["doctor", "--configfile", str(bad), "--directory", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1].endswith("2 FAIL: not ready: fix every FAIL above")
    assert "dataset_roots.busi_demo" in out


def test_tsv_keeps_quotes_tabs_and_newlines_in_one_field():
    checks = [Check("dataset", "x", FAIL, 'a "quoted"\tvalue\nsecond line', 'python -c "import x"'),
              Check("disk", "results", OK, "plenty")]
    table = pd.read_csv(io.StringIO(render_tsv(checks)), sep="\t", keep_default_na=False)
    assert table.shape == (2, 5)
    assert table.loc[0, "detail"] == 'a "quoted" value; second line'
    assert table.loc[0, "next_step"] == 'python -c "import x"' and table.loc[1, "next_step"] == ""
    text = render_table(checks)
    assert "-> python -c" in text and text.strip().endswith("1 OK, 0 WARN, 1 FAIL: not ready: fix every FAIL above")
