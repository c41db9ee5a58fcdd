# The atlas explorer: one interactive page per dataset (results/explorer/{dataset}/index.html) over every model's UMAP
# layouts, with the image behind every point; thumbnails are made once per dataset, not per model.


rule thumbnails:
    input:
        manifest="results/manifests/{dataset}.tsv",
    output:
        thumbnails=directory("results/thumbnails/{dataset}"),
        table="results/thumbnails/{dataset}.tsv",
    log:
        "logs/thumbnails/{dataset}.log",
    benchmark:
        "benchmarks/thumbnails/{dataset}.tsv"
    conda:
        "../envs/umap.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        px=EXPLORER["thumbnail_px"],
        budget_mb=EXPLORER["thumbnail_budget_mb"],
        quality=EXPLORER["thumbnail_quality"],
    script:
        "../scripts/thumbnails.py"


rule explorer_page:
    input:
        unpack(ocr_input),
        manifest="results/manifests/{dataset}.tsv",
        split="results/splits/{dataset}.tsv",
        thumbnails="results/thumbnails/{dataset}",
        thumbnail_table="results/thumbnails/{dataset}.tsv",
        layouts=expand("results/umap/{{dataset}}/{model}/layouts.h5", model=config["models"]),
        predictions=expand("results/probe/{{dataset}}/{model}.predictions.tsv", model=config["models"]),
    output:
        page=report(
            directory("results/explorer/{dataset}"),
            htmlindex="index.html",
            caption="../report/explorer.rst",
            category="Explorer",
            labels={"dataset": "{dataset}"},
        ),
    log:
        "logs/explorer_page/{dataset}.log",
    benchmark:
        "benchmarks/explorer_page/{dataset}.tsv"
    conda:
        "../envs/umap.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        models=config["models"],
        model_names=lambda wildcards: {m: MODELS[m]["name"] for m in config["models"]},
        dataset_name=lambda wildcards: DATASETS[wildcards.dataset]["name"],
        classes=lambda wildcards: DATASETS[wildcards.dataset].get("classes"),
        max_listed=EXPLORER["max_listed"],
    script:
        "../scripts/explorer_page.py"
