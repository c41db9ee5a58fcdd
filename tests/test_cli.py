import subprocess
import sys

from conftest import copy_demo_subset
from medprobe.cli import main


def test_models_tsv_lists_every_registry_entry(capsys, repo):
    assert main(["models", "--format", "tsv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split("\t") == ["id", "name", "family", "dim", "feature_point", "gated", "cached", "weights"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert len(rows) == 32 and rows["uni"][5] == "yes" and rows["pixels"][3] == "1024"
    assert rows["medklip"][6] == "local_weights" and rows["medklip"][3] == "1024"  # a manual download
    assert rows["pixels"][6] == "n/a" and rows["uni"][6] in ("yes", "no")
    assert rows["llava"][4] == "projector_mean" and rows["llava"][7] == "hf_hub:liuhaotian/llava-v1.5-7b"


def test_manifest_command_prints_counts(tmp_path, capsys):
    root = copy_demo_subset(tmp_path / "data", per_class=3)
    (root / "no_tumor" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    assert main(["manifest", "--root", str(root), "--out", str(tmp_path / "m.tsv")]) == 0
    out = capsys.readouterr().out
    assert "n = 9" in out and "glioma_tumor: 3" in out and "unreadable: 1" in out
    assert (tmp_path / "m.issues.tsv").read_text().count("broken.jpg") == 1


def test_manifest_command_checks_registry_counts(tmp_path, capsys, repo):
    code = main(["manifest", "--root", str(repo / "resources/demo/busi"), "--out", str(tmp_path / "b.tsv"),
                 "--dataset", "busi"])
    captured = capsys.readouterr()
    assert code == 1 and "expected 780 images, found 120" in captured.err


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "medprobe.cli", "version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip()


def test_datasets_command_reports_presence_and_counts(tmp_path, capsys, repo):
    root = copy_demo_subset(tmp_path / "brainmr" / "Training", per_class=2,
                            classes=("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"))
    assert root.exists()
    assert main(["datasets", "--data-root", str(tmp_path), "--format", "tsv"]) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.strip().splitlines()[1:]}
    assert rows["brainmr"][4] == "8" and "counts differ: expected 2870" in rows["brainmr"][5]
    assert rows["sarscov2ct"][5].startswith("missing: obtain it by hand")
    assert rows["pneumoniamnist"][5] == "missing: the download rule fetches it"
    assert "brainmr_demo" not in rows
