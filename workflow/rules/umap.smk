# Embeddings -> every UMAP layout of the n_neighbors x min_dist grid -> one grid figure per (dataset, model).


rule umap_sweep:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
    output:
        layouts="results/umap/{dataset}/{model}/layouts.h5",
        metrics="results/umap/{dataset}/{model}/metrics.tsv",
    log:
        "logs/umap_sweep/{dataset}/{model}.log",
    benchmark:
        "benchmarks/umap_sweep/{dataset}/{model}.tsv"
    conda:
        "../envs/umap.yaml"
    threads: config["umap"]["threads"]
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        n_neighbors=config["umap"]["n_neighbors"],
        min_dist=config["umap"]["min_dist"],
        metric=config["umap"]["metric"],
        seed=config["umap"]["seed"],
        optimizer=config["umap"]["optimizer"],
        metrics={
            "trust_neighbors": config["umap"]["trust_neighbors"],
            "knn_k": config["umap"]["knn_k"],
            "sample_size": config["umap"]["metric_sample"],
        },
    script:
        "../scripts/umap_sweep.py"


rule umap_figure:
    input:
        layouts="results/umap/{dataset}/{model}/layouts.h5",
    output:
        figure=report(
            "results/figures/umap/{dataset}/{model}.png",
            caption="../report/umap_grid.rst",
            category="UMAP layouts",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "model": "{model}"},
        ),
    log:
        "logs/umap_figure/{dataset}/{model}.log",
    benchmark:
        "benchmarks/umap_figure/{dataset}/{model}.tsv"
    conda:
        "../envs/umap.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        title=lambda wildcards: f"{DATASETS[wildcards.dataset]['name']} / {MODELS[wildcards.model]['name']}",
    script:
        "../scripts/umap_figure.py"


rule umap_figure_by:
    input:
        layouts="results/umap/{dataset}/{model}/layouts.h5",
        manifest="results/manifests/{dataset}.tsv",
    output:
        figure=report(
            "results/figures/umap_by/{attribute}/{dataset}/{model}.png",
            caption="../report/umap_grid_by.rst",
            category="UMAP layouts",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "model": "{model}", "coloured by": "{attribute}"},
        ),
    log:
        "logs/umap_figure_by/{attribute}/{dataset}/{model}.log",
    benchmark:
        "benchmarks/umap_figure_by/{attribute}/{dataset}/{model}.tsv"
    conda:
        "../envs/umap.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        title=lambda wildcards: f"{DATASETS[wildcards.dataset]['name']} / {MODELS[wildcards.model]['name']}",
    script:
        "../scripts/umap_figure_by.py"


rule umap_summary:
    input:
        metrics=expand("results/umap/{{dataset}}/{model}/metrics.tsv", model=config["models"]),
    output:
        figure=report(
            "results/figures/umap_summary/{dataset}.png",
            caption="../report/umap_summary.rst",
            category="UMAP layouts",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "models x metrics"},
        ),
        table="results/tables/umap_metrics/{dataset}.tsv",
        html=report(
            "results/tables/umap_metrics/{dataset}.html",
            caption="../report/umap_summary.rst",
            category="UMAP layouts",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "models x metrics (table)"},
        ),
    log:
        "logs/umap_summary/{dataset}.log",
    benchmark:
        "benchmarks/umap_summary/{dataset}.tsv"
    conda:
        "../envs/umap.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=lambda wildcards: {m: MODELS[m]["name"] for m in config["models"]},
        title=lambda wildcards: DATASETS[wildcards.dataset]["name"],
    script:
        "../scripts/umap_summary.py"
