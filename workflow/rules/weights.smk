# Model id -> results/weights/{model}.json: every weight file resolved (downloaded once into the libraries' caches)
# and hashed. A localrule, so that on a cluster it runs where there is internet; embed jobs then load offline.


rule fetch_weights:
    output:
        record="results/weights/{model}.json",
    log:
        "logs/fetch_weights/{model}.log",
    benchmark:
        "benchmarks/fetch_weights/{model}.tsv"
    localrule: True
    conda:
        "../envs/embed.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        spec=lambda wildcards: MODELS[wildcards.model],
        local_path=lambda wildcards: config["local_weights"].get(wildcards.model, ""),
        weights_dir=config["weights_dir"] or "",
    script:
        "../scripts/fetch_weights.py"
