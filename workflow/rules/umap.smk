# Embeddings -> every UMAP layout of the n_neighbors x min_dist grid -> one grid figure per (dataset, model).


rule umap_sweep:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
    output:
        layouts="results/umap/{dataset}/{model}/layouts.h5",
    params:
        n_neighbors=config["umap"]["n_neighbors"],
        min_dist=config["umap"]["min_dist"],
        metric=config["umap"]["metric"],
        seed=config["umap"]["seed"],
    threads: config["umap"]["threads"]
    resources:
        mem_mb=8000,
        runtime=120,
    log:
        "logs/umap_sweep/{dataset}/{model}.log",
    benchmark:
        "benchmarks/umap_sweep/{dataset}/{model}.tsv"
    conda:
        "../../envs/umap.yaml"
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
    params:
        title=lambda wildcards: f"{DATASETS[wildcards.dataset]['name']} / {MODELS[wildcards.model]['name']}",
    resources:
        mem_mb=4000,
        runtime=10,
    log:
        "logs/umap_figure/{dataset}/{model}.log",
    benchmark:
        "benchmarks/umap_figure/{dataset}/{model}.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/umap_figure.py"
