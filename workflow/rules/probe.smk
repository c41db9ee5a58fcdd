# Embeddings + the dataset's split -> the paper's LinearSVC probe (one row per fold, eval and metric, and the hold-out
# predictions), the few-shot probes and zero-shot classification.


rule probe:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
        split="results/splits/{dataset}.tsv",
    output:
        probe="results/probe/{dataset}/{model}.tsv",
        predictions="results/probe/{dataset}/{model}.predictions.tsv",
    log:
        "logs/probe/{dataset}/{model}.log",
    benchmark:
        "benchmarks/probe/{dataset}/{model}.tsv"
    conda:
        "../envs/probe.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        probe=config["probe"],
        seed=config["split"]["seed"],
    script:
        "../scripts/probe.py"


rule fewshot:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
        split="results/splits/{dataset}.tsv",
    output:
        fewshot="results/fewshot/{dataset}/{model}.tsv",
    log:
        "logs/fewshot/{dataset}/{model}.log",
    benchmark:
        "benchmarks/fewshot/{dataset}/{model}.tsv"
    conda:
        "../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        fewshot=config["fewshot"],
        seed=config["split"]["seed"],
    script:
        "../scripts/fewshot.py"


rule zeroshot:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
        split="results/splits/{dataset}.tsv",
        weights="results/weights/{model}.json",
    output:
        zeroshot="results/zeroshot/{dataset}/{model}.tsv",
    log:
        "logs/zeroshot/{dataset}/{model}.log",
    benchmark:
        "benchmarks/zeroshot/{dataset}/{model}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=30,
    params:
        model=lambda wildcards: MODELS[wildcards.model],
        dataset=lambda wildcards: DATASETS[wildcards.dataset],
        weights_dir=config["weights_dir"] or "",
    script:
        "../scripts/zeroshot.py"
