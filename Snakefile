# medprobe: how discriminative are frozen image encoders on medical images?
#   snakemake --cores 2                                    the offline demo (config/demo.yaml, the embedded default)
#   snakemake --cores 8 --resources gpu=1 --configfile config/config.yaml      the paper: 16 models x 8 datasets
#   snakemake --profile profiles/slurm --configfile config/config.yaml           the same, submitted to SLURM
# Named targets: fetch, embeddings, umap, probes, bias, paper_table (targets first: `snakemake probes --cores 2`).
# `fetch` downloads the datasets and weights only: run it where there is internet, e.g. on a cluster's login node.

from pathlib import Path

from snakemake.utils import min_version

min_version("8.0")


# The embedded default, found from the repository so that `--directory elsewhere` works too.
configfile: str(Path(workflow.basedir) / "config" / "demo.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/umap.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/bias.smk"


rule all:
    default_target: True
    input:
        all_outputs(),


localrules:
    all,
    fetch,
    embeddings,
    umap,
    probes,
    bias,


rule fetch:
    input:
        expand("results/datasets/{dataset}.json", dataset=config["datasets"]),
        expand("results/weights/{model}.json", model=config["models"]),


rule embeddings:
    input:
        embedding_targets(),


rule umap:
    input:
        umap_targets(),


rule probes:
    input:
        probe_targets(),


rule bias:
    input:
        bias_targets(),
