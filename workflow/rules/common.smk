# The workflow's own files first (wherever it was loaded from), then validation: the config against its schema, both
# registries against theirs, and every configured id against the registries. Everything the rules need from the
# registries comes from the functions below.
import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def _accept_source_files_in_gitfile_join():
    """Snakemake 9.x (seen in 9.27.1): for a `script:` rule of a gitfile() module, Job._path_to_source_file hands
    LocalGitFile.join a LocalSourceFile where it expects a str (TypeError in every dry run). Make it take what every
    other SourceFile.join takes; a no-op where Snakemake has fixed it."""
    from snakemake.sourcecache import LocalGitFile, SourceFile

    join = LocalGitFile.join
    if getattr(join, "medprobe_accepts_source_files", False):
        return

    def accepting_join(self, path):
        return join(self, path.get_path_or_uri(secret_free=False) if isinstance(path, SourceFile) else path)

    accepting_join.medprobe_accepts_source_files = True
    LocalGitFile.join = accepting_join


def _workflow_root():
    """The tree holding this workflow's library (src/medprobe), registries, schemas and published table, in the
    repository's layout. A checkout or a local-path module: the module's own folder. A gitfile()/github() module: those
    files (workflow/module-files.txt) copied once out of Snakemake's source cache into
    .snakemake/medprobe/<version>-<content hash>/ (the cache itself is temporary, and params must not change between
    runs), so that the rules, their scripts and their conda envs all import this workflow's own medprobe."""
    here = Path(str(workflow.current_basedir.get_path_or_uri(secret_free=True)))
    if (here.parent.parent / "src" / "medprobe" / "__init__.py").is_file():
        return here.parent.parent.resolve()
    _accept_source_files_in_gitfile_join()
    listing = Path(workflow.source_path("../module-files.txt")).read_text(encoding="utf-8").split("\n")
    names = [line.strip() for line in listing if line.strip() and not line.startswith("#")]
    sources = {name: Path(workflow.source_path(f"../../{name}")) for name in names}
    digest = hashlib.sha256()
    for name in names:
        for part in (name.encode(), sources[name].read_bytes()):
            digest.update(part)
            digest.update(b"\0")
    version = re.search(r'__version__ = "([^"]+)"', sources["src/medprobe/__init__.py"].read_text()).group(1)
    target = Path(".snakemake", "medprobe", f"{version}-{digest.hexdigest()[:12]}").resolve()
    if not target.is_dir():  # written aside and renamed: a parallel job sees all of it or none
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
        for name, source in sources.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / name)
        try:
            staging.rename(target)
        except OSError:  # another process got there first, with the same content
            shutil.rmtree(staging, ignore_errors=True)
    return target


WORKFLOW_ROOT = _workflow_root()
LIBRARY = WORKFLOW_ROOT / "src"
# The scripts (run in their own process, in a conda env or not) read it here.
os.environ.update({"MEDPROBE_LIBRARY": str(LIBRARY)})
sys.path.insert(0, str(LIBRARY))

import medprobe  # noqa: E402

if Path(medprobe.__file__).resolve().parent != LIBRARY / "medprobe":
    raise WorkflowError(
        f"medprobe was already imported from {Path(medprobe.__file__).parent}, not from this workflow's own library "
        f"{LIBRARY / 'medprobe'}: run snakemake in a fresh process (not from a Python session that imported medprobe)"
    )

from medprobe.manifest import input_fingerprint  # noqa: E402
from medprobe.registry import check_config  # noqa: E402
from medprobe.registry import dataset_root as _dataset_root  # noqa: E402
from medprobe.registry import load_workflow_registries  # noqa: E402
from medprobe.registry import workflow_path  # noqa: E402

check_config(config, getattr(workflow, "configfiles", []))  # each bad value named with the file that holds it
validate(config, schema="../schemas/config.schema.yaml")  # Snakemake's: also fills the schema's defaults
CONFIG_SOURCE = f"config ({', '.join(str(p) for p in getattr(workflow, 'configfiles', []))})"
MODELS, DATASETS = load_workflow_registries(config, WORKFLOW_ROOT, source=CONFIG_SOURCE, workdir=Path.cwd())


def workflow_file(path):
    """A file the config names (relative: the working directory's copy when there is one, else this workflow's)."""
    return str(workflow_path(path, WORKFLOW_ROOT, Path.cwd()))


def _alternatives(ids):
    """A wildcard regex matching exactly these ids (longest first, so vit_l_16 is never read as vit_l)."""
    return "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    model=_alternatives(MODELS),
    attribute="group|size|aspect_ratio|mode|format|folder",


def dataset_root(dataset):
    return _dataset_root(dataset, DATASETS[dataset], config["data_root"], config["dataset_roots"])


def manifest_input(wildcards):
    """The image folder when it exists (so new files rerun the manifest); when absent the rule says how to get it."""
    root = dataset_root(wildcards.dataset)
    return {"root": local(str(root))} if root.exists() else {}  # local: a module's prefix: does not move the data


def model_resource(key, default):
    return lambda wildcards: MODELS[wildcards.model]["resources"].get(key, default)


def configured_models():
    return {m: MODELS[m] for m in config["models"]}


def configured_datasets():
    return {d: DATASETS[d] for d in config["datasets"]}


def embedding_targets():
    return expand("results/embeddings/{dataset}/{model}.h5", dataset=config["datasets"], model=config["models"])


def umap_targets():
    return (
        expand("results/figures/umap/{dataset}/{model}.png", dataset=config["datasets"], model=config["models"])
        + expand("results/figures/umap_summary/{dataset}.png", dataset=config["datasets"])
        + expand(
            "results/figures/umap_by/{attribute}/{dataset}/{model}.png",
            attribute=config["umap"].get("color_by", []),
            dataset=config["datasets"],
            model=config["models"],
        )
    )


def probe_targets():
    return expand("results/probe/{dataset}/{model}.tsv", dataset=config["datasets"], model=config["models"])


def zeroshot_models():
    return [m for m in config["models"] if MODELS[m].get("text_tower")]


def table_targets():
    if not config["protocols"].get("paper_probe", True):
        return []
    names = [
        "paper_table.tsv",
        "paper_table.md",
        "paper_table.tex",
        "summary.tsv",
        "vs_published.tsv",
        "vs_published.md",
    ]
    return expand("results/tables/{name}", name=names)


def protocol_targets():
    targets = []
    if config["protocols"]["paired_tests"]:
        targets += expand("results/tables/paired/{dataset}.tsv", dataset=config["datasets"])
    if config["protocols"]["fewshot"]:
        targets += ["results/tables/fewshot.tsv", "results/tables/fewshot.md", "results/tables/fewshot_shots.md"]
        targets += ["results/figures/fewshot_shots.png"]
    if config["protocols"].get("transfer"):
        targets += transfer_table_targets()
    if config["protocols"].get("transfer_zeroshot"):
        targets += table3_targets()
    if config["protocols"]["zeroshot"] and zeroshot_models():
        targets += ["results/tables/zeroshot.tsv", "results/tables/zeroshot.md"]
    return targets


TRANSFER = {"shots": [16], "table_shots": 16, "folds": 5, "shots_test_pool": "20%", "shots_val": "0%", "balance": True}
TRANSFER.update({"C": 0.316, "max_iter": 1000, "published": "resources/dlilp/published_table4.tsv"})
TRANSFER.update(config.get("transfer") or {})  # a deployed project's older config may not have the section


def transfer_targets():
    return expand("results/transfer/{dataset}/{model}.tsv", dataset=config["datasets"], model=config["models"])


TRANSFER_ZEROSHOT = {"datasets": ["covid_2class", "covid_4class"], "prompt_sets": ["names", "ensemble"]}
TRANSFER_ZEROSHOT.update({"desc_prompt_set": "ensemble", "dlilp_head_swap": True, "test_set": "test"})
TRANSFER_ZEROSHOT.update({"shots_train": 16, "balance": True, "published": "resources/dlilp/published_table3.tsv"})
TRANSFER_ZEROSHOT.update(config.get("transfer_zeroshot") or {})


def transfer_zeroshot_models():
    """The configured models the study's zero-shot runs on: those with a dlilp_zero_shot registry entry."""
    return [m for m in config["models"] if MODELS[m].get("dlilp_zero_shot")]


def transfer_zeroshot_datasets():
    return {d: DATASETS[d] for d in TRANSFER_ZEROSHOT["datasets"]}


def transfer_zeroshot_targets():
    return expand(
        "results/dlilp_zeroshot/{dataset}/{model}.tsv",
        dataset=TRANSFER_ZEROSHOT["datasets"],
        model=transfer_zeroshot_models(),
    )


def table3_targets():
    names = ["table3.tsv", "table3.md", "table3.tex", "table3_vs_published.md"]
    return expand("results/tables/{name}", name=names)


def transfer_table_targets():
    names = ["table4.tsv", "table4.md", "table4.tex", "table4_vs_published.md", "transfer_shots.md"]
    return expand("results/tables/{name}", name=names) + ["results/figures/transfer_shots.png"]


def ocr_input(wildcards):
    """The dataset's OCR tokens when the nuisance audit reads burned-in text (bias.ocr)."""
    return {"ocr": f"results/manifests/{wildcards.dataset}.ocr.tsv"} if config.get("bias", {}).get("ocr") else {}


def bias_targets():
    return ["results/tables/bias.tsv", "results/tables/bias.md"] + expand(
        "results/figures/bias/{dataset}.png", dataset=config["datasets"]
    )


def benchmark_rule_order():
    """The rules in the order they are defined, named as their benchmark folders name them (benchmarks/<rule>/...):
    a module's `use rule * from medprobe as medprobe_*` renames the rules, not the folders."""
    order = []
    for defined in workflow.rules:
        parts = Path(str(defined.benchmark or "")).parts
        if "benchmarks" in parts[:-1]:
            order.append(parts[parts.index("benchmarks") + 1])
    return order


EXPLORER = {"enabled": True, "thumbnail_px": 96, "thumbnail_budget_mb": 300, "thumbnail_quality": 80, "max_listed": 200}
EXPLORER.update(config.get("explorer") or {})  # a deployed project's older config may not have the section


def explorer_targets():
    return expand("results/explorer/{dataset}", dataset=config["datasets"])


def analysis_outputs():
    """Every output of the default target but the runtime table (which reads their benchmark files)."""
    extra = bias_targets() if config["protocols"].get("bias") else []
    extra += explorer_targets() if EXPLORER["enabled"] else []
    return table_targets() + umap_targets() + protocol_targets() + extra


def all_outputs():
    return analysis_outputs() + ["results/tables/runtimes.tsv"]
