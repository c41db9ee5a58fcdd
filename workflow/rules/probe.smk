# Embeddings + the dataset's split -> the paper's LinearSVC probe, one row per (fold, eval, metric).


rule probe:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
        split="results/splits/{dataset}.tsv",
    output:
        probe="results/probe/{dataset}/{model}.tsv",
    params:
        probe=config["probe"],
        seed=config["split"]["seed"],
    threads: 1
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
