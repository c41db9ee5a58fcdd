# Validation first: the config against its schema, both registries against theirs, and every configured id against
# the registries. Everything the rules need from the registries comes from the functions below.
import re
import sys
from pathlib import Path

from snakemake.utils import validate

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))

from medprobe.manifest import input_fingerprint  # noqa: E402
from medprobe.registry import check_config  # noqa: E402
from medprobe.registry import dataset_root as _dataset_root  # noqa: E402
from medprobe.registry import load_workflow_registries  # noqa: E402

check_config(config, getattr(workflow, "configfiles", []))  # each bad value named with the file that holds it
validate(config, schema="../schemas/config.schema.yaml")  # Snakemake's: also fills the schema's defaults
CONFIG_SOURCE = "config (" + ", ".join(str(p) for p in getattr(workflow, "configfiles", [])) + ")"
MODELS, DATASETS = load_workflow_registries(config, REPO, source=CONFIG_SOURCE)


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
    return {"root": str(root)} if root.exists() else {}


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
        targets += ["results/tables/fewshot.tsv", "results/tables/fewshot.md"]
    if config["protocols"]["zeroshot"] and zeroshot_models():
        targets += ["results/tables/zeroshot.tsv", "results/tables/zeroshot.md"]
    return targets


def ocr_input(wildcards):
    """The dataset's OCR tokens when the nuisance audit reads burned-in text (bias.ocr)."""
    return {"ocr": f"results/manifests/{wildcards.dataset}.ocr.tsv"} if config.get("bias", {}).get("ocr") else {}


def bias_targets():
    return ["results/tables/bias.tsv", "results/tables/bias.md"] + expand(
        "results/figures/bias/{dataset}.png", dataset=config["datasets"]
    )


def all_outputs():
    extra = bias_targets() if config["protocols"].get("bias") else []
    return table_targets() + umap_targets() + protocol_targets() + extra + ["results/tables/runtimes.tsv"]
