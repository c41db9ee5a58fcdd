# Embeddings + the dataset's split -> the paper's LinearSVC probe (one row per fold, eval and metric, and the hold-out
# predictions), the few-shot probes and zero-shot classification.


rule probe:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
        split="results/splits/{dataset}.tsv",
    output:
        probe="results/probe/{dataset}/{model}.tsv",
        predictions="results/probe/{dataset}/{model}.predictions.tsv",
    params:
        probe=config["probe"],
        seed=config["split"]["seed"],
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    log:
        "logs/probe/{dataset}/{model}.log",
    benchmark:
        "benchmarks/probe/{dataset}/{model}.tsv"
    conda:
        "../../envs/probe.yaml"
    script:
        "../scripts/probe.py"


rule fewshot:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
        split="results/splits/{dataset}.tsv",
    output:
        fewshot="results/fewshot/{dataset}/{model}.tsv",
    params:
        fewshot=config["fewshot"],
        seed=config["split"]["seed"],
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    log:
        "logs/fewshot/{dataset}/{model}.log",
    benchmark:
        "benchmarks/fewshot/{dataset}/{model}.tsv"
    conda:
        "../../envs/probe.yaml"
    script:
        "../scripts/fewshot.py"


rule zeroshot:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
        split="results/splits/{dataset}.tsv",
        weights="results/weights/{model}.json",
    output:
        zeroshot="results/zeroshot/{dataset}/{model}.tsv",
    params:
        model=lambda wildcards: MODELS[wildcards.model],
        dataset=lambda wildcards: DATASETS[wildcards.dataset],
        weights_dir=config["weights_dir"] or "",
    threads: 1
    resources:
        mem_mb=16000,
        runtime=30,
    log:
        "logs/zeroshot/{dataset}/{model}.log",
    benchmark:
        "benchmarks/zeroshot/{dataset}/{model}.tsv"
    conda:
        "../../envs/embed.yaml"
    script:
        "../scripts/zeroshot.py"
