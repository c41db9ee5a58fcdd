# Dataset -> on disk (downloaded once where the source is public) -> manifest (+ issues) -> one split per dataset,
# shared by every model.


rule download:
    output:
        record="results/datasets/{dataset}.json",
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "benchmarks/download/{dataset}.tsv"
    localrule: True
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=600,
    params:
        spec=lambda wildcards: DATASETS[wildcards.dataset],
        root=lambda wildcards: str(dataset_root(wildcards.dataset)),
        data_root=config["data_root"],
    script:
        "../scripts/download.py"


rule manifest:
    input:
        unpack(manifest_input),
        record="results/datasets/{dataset}.json",
    output:
        manifest="results/manifests/{dataset}.tsv",
        issues="results/manifests/{dataset}.issues.tsv",
    log:
        "logs/manifest/{dataset}.log",
    benchmark:
        "benchmarks/manifest/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    threads: config["manifest"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        spec=lambda wildcards: DATASETS[wildcards.dataset],
        root=lambda wildcards: str(dataset_root(wildcards.dataset)),
        data_root=config["data_root"],
        # a file under the root added, removed, replaced or touched reruns the manifest (and all after it)
        fingerprint=lambda wildcards: input_fingerprint(dataset_root(wildcards.dataset)),
        count_mismatch=config["manifest"]["count_mismatch"],
        duplicates=config["manifest"]["duplicates"],
    script:
        "../scripts/manifest.py"


rule split:
    input:
        manifest="results/manifests/{dataset}.tsv",
    output:
        split="results/splits/{dataset}.tsv",
        issues="results/splits/{dataset}.issues.tsv",
    log:
        "logs/split/{dataset}.log",
    benchmark:
        "benchmarks/split/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        seed=config["split"]["seed"],
        holdout_fraction=config["split"]["holdout_fraction"],
        n_folds=config["split"]["n_folds"],
        group_aware=config["split"]["group_aware"],
    script:
        "../scripts/split.py"
