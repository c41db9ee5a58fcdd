# The bias audit. The typographic probe: the hold-out images with words written on them -> embeddings through the same
# model and pipeline (a GPU rule beside `embed`) -> decodability, effect size and shortcut drop per word set. The
# nuisance audit: how much neighbourhoods of the clean embeddings follow group, size, aspect, mode, format, folder
# rather than the class. -> one table, and a figure per dataset with a panel of the overlaid images.


rule embed_overlay:
    input:
        manifest="results/manifests/{dataset}.tsv",
        split="results/splits/{dataset}.tsv",
        weights="results/weights/{model}.json",
    output:
        embeddings="results/bias/overlays/{dataset}/{model}.h5",
    log:
        "logs/embed_overlay/{dataset}/{model}.log",
    benchmark:
        "benchmarks/embed_overlay/{dataset}/{model}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: config["embed"]["threads"]
    resources:
        gpu=model_resource("gpu", 0),
        mem_mb=model_resource("mem_mb", 8000),
        runtime=model_resource("runtime", 60),
    params:
        spec=lambda wildcards: MODELS[wildcards.model],
        classes=lambda wildcards: DATASETS[wildcards.dataset].get("classes"),
        bias=config.get("bias", {}),
        device=config["embed"]["device"],
        weights_dir=config["weights_dir"] or "",
        seed=config["split"]["seed"],
    script:
        "../scripts/embed_overlay.py"


rule ocr:
    input:
        manifest="results/manifests/{dataset}.tsv",
    output:
        ocr="results/manifests/{dataset}.ocr.tsv",
    log:
        "logs/ocr/{dataset}.log",
    benchmark:
        "benchmarks/ocr/{dataset}.tsv"
    conda:
        "../envs/ocr.yaml"
    threads: config["manifest"]["threads"]
    resources:
        mem_mb=4000,
        runtime=240,
    script:
        "../scripts/ocr.py"


rule bias_audit:
    input:
        unpack(ocr_input),
        embeddings="results/embeddings/{dataset}/{model}.h5",
        overlays="results/bias/overlays/{dataset}/{model}.h5",
        manifest="results/manifests/{dataset}.tsv",
    output:
        table="results/bias/{dataset}/{model}.tsv",
    log:
        "logs/bias_audit/{dataset}/{model}.log",
    benchmark:
        "benchmarks/bias_audit/{dataset}/{model}.tsv"
    conda:
        "../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        n_folds=config.get("bias", {}).get("n_folds", 5),
        n_boot=config.get("bias", {}).get("n_boot", 200),
        knn_k=config.get("bias", {}).get("knn_k", 10),
        seed=config["split"]["seed"],
    script:
        "../scripts/bias_audit.py"


rule typographic_attack:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
        overlays="results/bias/overlays/{dataset}/{model}.h5",
        weights="results/weights/{model}.json",
    output:
        table="results/bias/{dataset}/{model}.attack.tsv",
    log:
        "logs/typographic_attack/{dataset}/{model}.log",
    benchmark:
        "benchmarks/typographic_attack/{dataset}/{model}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 2
    resources:
        mem_mb=model_resource("mem_mb", 8000),
        runtime=30,
    params:
        model=lambda wildcards: MODELS[wildcards.model],
        dataset=lambda wildcards: DATASETS[wildcards.dataset],
        weights_dir=config["weights_dir"] or "",
    script:
        "../scripts/typographic_attack.py"


rule bias_table:
    input:
        tables=expand("results/bias/{dataset}/{model}.tsv", dataset=config["datasets"], model=config["models"]),
        attacks=expand("results/bias/{dataset}/{model}.attack.tsv", dataset=config["datasets"], model=zeroshot_models()),
    output:
        table="results/tables/bias.tsv",
        markdown="results/tables/bias.md",
        html=report(
            "results/tables/bias.html",
            caption="../report/bias_table.rst",
            category="Bias audit",
            labels={"table": "typographic probe"},
        ),
    log:
        "logs/bias_table/all.log",
    benchmark:
        "benchmarks/bias_table/all.tsv"
    localrule: True
    conda:
        "../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=configured_models(),
        datasets=configured_datasets(),
    script:
        "../scripts/bias_table.py"


rule bias_figure:
    input:
        table="results/tables/bias.tsv",
        manifest="results/manifests/{dataset}.tsv",
        split="results/splits/{dataset}.tsv",
    output:
        figure=report(
            "results/figures/bias/{dataset}.png",
            caption="../report/bias_figure.rst",
            category="Bias audit",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "models ranked"},
        ),
        examples=report(
            "results/figures/bias/{dataset}.examples.png",
            caption="../report/bias_examples.rst",
            category="Bias audit",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "overlaid images"},
        ),
    log:
        "logs/bias_figure/{dataset}.log",
    benchmark:
        "benchmarks/bias_figure/{dataset}.tsv"
    conda:
        "../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=configured_models(),
        classes=lambda wildcards: DATASETS[wildcards.dataset].get("classes"),
        bias=config.get("bias", {}),
        seed=config["split"]["seed"],
    script:
        "../scripts/bias_figure.py"
