"""medprobe deployed the ways Snakemake users deploy it: as a module (a local path or gitfile() from a git clone, with
and without `prefix:`, and github() as snakedeploy writes it, read from Snakemake's git cache), as a wheel, and with
every download pinned.

The module runs use the deploying project's own Snakefile and config/config.yaml, as `snakedeploy deploy-workflow`
writes them, in a folder outside the checkout; their paper table must equal a cloned run's on the same config.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_demo_subset

sys.path.insert(0, str(REPO / "tools"))

# What `snakedeploy deploy-workflow <repo> <dest> --tag X` writes to <dest>/workflow/Snakefile (snakedeploy 0.15,
# templates/use_module.smk.jinja), with the module's source, an optional prefix and optionally renamed rules.
MODULE_SNAKEFILE = """\
from snakemake.utils import min_version


min_version("6.10.0")


configfile: "config/config.yaml"


# declare medprobe as a module
module medprobe:
    snakefile:
        {snakefile}
    config:
        config
{prefix}

# use all rules from medprobe
use rule * from medprobe{rename}
"""


def full_config(tmp_path: Path) -> dict:
    """The tiny config as a deploying project holds it: every key (a module does not read its own configfile), one
    model, 3 classes x 10 real images, a 2 x 2 UMAP grid, the protocols and the bias audit off (tested elsewhere)."""
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    data = copy_demo_subset(tmp_path / "data", per_class=10)
    config.update({
        "models": ["pixels"],
        "datasets": ["tiny"],
        "custom_datasets": {"tiny": {
            "name": "Tiny", "adapter": "imagefolder", "root": str(data), "licence": "MIT (BrainMR demo subset)",
            "classes": ["glioma_tumor", "no_tumor", "pituitary_tumor"],
            "expected": {"n": 30, "counts": {"glioma_tumor": 10, "no_tumor": 10, "pituitary_tumor": 10}}}},
    })
    config["umap"].update({"n_neighbors": [3, 50], "min_dist": [0.1, 0.5], "threads": 1, "color_by": []})
    config["protocols"] = {name: False for name in config["protocols"]}
    return config


def snakemake(*args: str, cwd: Path, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"snakemake {' '.join(args)} in {cwd} failed:\n{result.stdout[-5000:]}\n" \
                                   f"{result.stderr[-5000:]}"
    return result


def copy_of_this_tree(dest: Path) -> Path:
    """This checkout's files as they are now (committed or not), without build outputs."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def git_clone_of_this_tree(dest: Path) -> Path:
    """A git repository holding this checkout's files as they are now (committed or not), tagged v-test."""
    copy_of_this_tree(dest)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "test"], ["tag", "v-test"]):
        subprocess.run(["git", *command], cwd=dest, check=True, env=env, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def deployments(tmp_path_factory):
    """The same config run cloned, and as four kinds of module: {kind: (workdir, results folder)}."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    base = tmp_path_factory.mktemp("deploy")
    config = full_config(base)
    clone = git_clone_of_this_tree(base / "medprobe-git")
    runs = {}

    cloned = base / "cloned"
    cloned.mkdir()
    (cloned / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake("--snakefile", str(REPO / "workflow" / "Snakefile"), "--cores", "2", "--configfile", "config.yaml",
              cwd=cloned)
    runs["cloned"] = (cloned, cloned)

    # github(): what snakedeploy writes. Offline, Snakemake finds the repository already in its git cache (a bare
    # clone of the local one, where Snakemake would have cloned github.com/medprobe-test/medprobe) and reads the tag
    # from there, as it does after its first clone.
    cache = base / "xdg-cache"
    bare = (cache / "snakemake" / "snakemake" / "source-cache" / "snakemake-git-cache" / "github.com" / "medprobe-test"
            / "medprobe")
    subprocess.run(["git", "clone", "-q", "--bare", str(clone), str(bare)], check=True, capture_output=True)
    sources = {"local": repr(str(REPO / "workflow" / "Snakefile")),
               "gitfile": f'gitfile({str(clone)!r}, path="workflow/Snakefile", tag="v-test")',
               "github": 'github("medprobe-test/medprobe", path="workflow/Snakefile", tag="v-test")'}
    for kind, snakefile in sources.items():
        for prefix in ("", "run1") if kind != "github" else ("",):
            # as snakedeploy leaves it: config/ (registries included) and profiles/ copied, workflow/Snakefile written
            work = base / f"{kind}{'-' + prefix if prefix else ''}"
            shutil.copytree(REPO / "config", work / "config")
            shutil.copytree(REPO / "profiles", work / "profiles")
            (work / "config" / "config.yaml").write_text(yaml.safe_dump(copy.deepcopy(config)))
            (work / "workflow").mkdir()
            (work / "workflow" / "Snakefile").write_text(MODULE_SNAKEFILE.format(
                snakefile=snakefile, prefix=f'    prefix:\n        "{prefix}"\n' if prefix else "",
                rename=" as medprobe_*" if prefix else ""))
            snakemake("--cores", "2", cwd=work, env={"XDG_CACHE_HOME": str(cache)})
            runs[f"{kind}{' prefix' if prefix else ''}"] = (work, work / prefix if prefix else work)
    return runs



@pytest.mark.integration
def test_module_deployments_reproduce_the_cloned_run(deployments):
    work, results = deployments["cloned"]
    expected = pd.read_csv(results / "results/tables/paper_table.tsv", sep="\t")
    expected_summary = pd.read_csv(results / "results/tables/summary.tsv", sep="\t")
    assert expected.shape[0] == 1 and "Tiny" in " ".join(expected.columns)
    for kind, (work, results) in deployments.items():
        table = pd.read_csv(results / "results/tables/paper_table.tsv", sep="\t")
        pd.testing.assert_frame_equal(table, expected, obj=f"{kind}: paper table")
        summary = pd.read_csv(results / "results/tables/summary.tsv", sep="\t")
        pd.testing.assert_frame_equal(summary, expected_summary, obj=f"{kind}: summary")
        for stage in ("embed/tiny/pixels", "probe/tiny/pixels", "umap_sweep/tiny/pixels"):
            assert (results / "logs" / f"{stage}.log").is_file(), f"{kind}: {stage} log not under {results}"
            assert (results / "benchmarks" / f"{stage}.tsv").is_file(), f"{kind}: {stage} benchmark not under {results}"
        # the runtime table finds the benchmarks under the prefix, rules named as in the workflow
        runtimes = pd.read_csv(results / "results/tables/runtimes.tsv", sep="\t")
        assert {"embed", "probe", "umap_sweep", "paper_table"} <= set(runtimes["rule"]), f"{kind}: {runtimes}"
        assert list(runtimes["rule"][:3]) == ["download", "manifest", "split"], f"{kind}: rule order"
        # nothing escaped a prefix into the deploying project's own folders
        if results != work:
            assert not (work / "results").exists() and not (work / "logs").exists(), kind


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["gitfile", "github"])
def test_a_git_module_runs_its_own_library_copy(deployments, kind):
    """A gitfile() or github() module brings no src/: the workflow copies its library out of the source cache once,
    and the jobs import that copy (its embeddings record the module's version; the copy's files equal the checkout's)."""
    import h5py

    import medprobe

    work, results = deployments[kind]
    copies = list((work / ".snakemake" / "medprobe").iterdir())
    assert len(copies) == 1 and copies[0].name.startswith(f"{medprobe.__version__}-"), copies
    listed = [line for line in (REPO / "workflow" / "module-files.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    for name in listed:  # Snakemake reads a git file through GitPython's `git show`, which drops the final newline
        assert (copies[0] / name).read_bytes().rstrip(b"\n") == (REPO / name).read_bytes().rstrip(b"\n"), name
    assert not [p for p in copies[0].parent.iterdir() if p.name.startswith(".partial-")]  # no half-written copy
    with h5py.File(results / "results/embeddings/tiny/pixels.h5", "r") as handle:
        assert handle.attrs["medprobe_version"] == medprobe.__version__
    # a rerun finds everything up to date: the copy's path and the published table's path (a param) are stable
    rerun = snakemake("--cores", "2", "-n", cwd=work, env={"XDG_CACHE_HOME": str(work.parent / "xdg-cache")})
    assert "Nothing to be done" in rerun.stdout + rerun.stderr, rerun.stdout[-3000:]


def test_module_files_list_everything_the_workflow_reads():
    from module_files import module_files

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    listed = [line for line in (REPO / "workflow" / "module-files.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    expected = module_files(REPO)
    assert listed == expected, ("workflow/module-files.txt is out of date: run "
                                "python tools/module_files.py > workflow/module-files.txt")
    assert "src/medprobe/__init__.py" in listed and "config/models.yaml" in listed
    assert all((REPO / name).is_file() for name in listed)


def test_every_download_is_pinned_and_the_schema_refuses_an_unpinned_one():
    from medprobe.errors import RegistryError
    from medprobe.registry import DEFAULT_DATASETS, load_datasets, validate

    for dataset_id, spec in load_datasets(DEFAULT_DATASETS).items():
        for item in spec.get("download") or []:
            if "git" in item:
                assert len(item["commit"]) == 40, dataset_id
            else:
                assert item.get("md5") or item.get("sha256") or item.get("unpinned"), dataset_id
    entry = {"name": "X", "adapter": "imagefolder", "root": "x", "licence": "MIT", "classes": ["a", "b"]}
    for item, complaint in (({"git": "https://example.org/x.git", "into": "x"}, "commit"),
                            ({"git": "https://example.org/x.git", "commit": "main", "into": "x"}, "does not match"),
                            ({"url": "https://example.org/x.zip", "file": "x.zip", "into": "x"}, "is not valid")):
        with pytest.raises(RegistryError, match=complaint):
            validate({"x": {**entry, "download": [item]}}, "datasets", "test registry")


def test_wheel_carries_the_workflow_files_and_the_command_works_outside_the_checkout(tmp_path):
    """`pip wheel .`, installed into its own folder: `medprobe models` and `medprobe doctor` run from elsewhere and
    read the registries and schemas the wheel carries (not a checkout's)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    # built from a copy: setuptools leaves build/ in the tree it builds, and a stale build/lib leaks into later wheels
    source = copy_of_this_tree(tmp_path / "source")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "w"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "w").glob("medprobe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("medprobe/_data/config/models.yaml", "medprobe/_data/config/datasets.yaml",
                 "medprobe/_data/config/demo.yaml", "medprobe/_data/workflow/schemas/config.schema.yaml",
                 "medprobe/_data/resources/published_table.tsv", "medprobe/cli.py"):
        assert name in names, name
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
                                str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}

    def medprobe_command(*args):
        return subprocess.run([sys.executable, "-c", "import sys, medprobe.cli; print('FROM', medprobe.cli.__file__); "
                               "sys.exit(medprobe.cli.main(sys.argv[1:]))", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300)

    models = medprobe_command("models")
    assert models.returncode == 0, models.stderr
    assert f"FROM {target}" in models.stdout and "biomedclip" in models.stdout and "llava_med" in models.stdout
    doctor = medprobe_command("doctor")
    assert f"FROM {target}" in doctor.stdout
    assert "torch" in doctor.stdout and "brainmr_demo" in doctor.stdout  # the packaged demo config, read
    assert "Traceback" not in doctor.stderr, doctor.stderr


def test_config_named_files_come_from_the_working_directory_first_then_the_workflow(tmp_path):
    """A deployed project's copy of a registry (snakedeploy copies config/) is the one read; without a copy, the
    workflow's own; an absolute path as given."""
    from medprobe.registry import REPO_ROOT, workflow_path

    assert workflow_path("config/models.yaml", REPO_ROOT, tmp_path) == REPO_ROOT / "config" / "models.yaml"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "models.yaml").write_text("{}\n")
    assert workflow_path("config/models.yaml", REPO_ROOT, tmp_path) == (tmp_path / "config" / "models.yaml").resolve()
    assert workflow_path(tmp_path / "x.yaml", REPO_ROOT, REPO_ROOT) == tmp_path / "x.yaml"
    assert workflow_path("config/models.yaml", REPO_ROOT) == REPO_ROOT / "config" / "models.yaml"  # no workdir given
