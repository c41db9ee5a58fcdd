# Raw dataset folder -> manifest (+ issues) -> one split per dataset, shared by every model.


rule manifest:
    input:
        unpack(manifest_input),
    output:
        manifest="results/manifests/{dataset}.tsv",
        issues="results/manifests/{dataset}.issues.tsv",
    params:
        spec=lambda wildcards: DATASETS[wildcards.dataset],
        root=lambda wildcards: str(dataset_root(wildcards.dataset)),
        data_root=config["data_root"],
        count_mismatch=config["manifest"]["count_mismatch"],
        duplicates=config["manifest"]["duplicates"],
    threads: config["manifest"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        "logs/manifest/{dataset}.log",
    benchmark:
        "benchmarks/manifest/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/manifest.py"


rule split:
    input:
        manifest="results/manifests/{dataset}.tsv",
    output:
        split="results/splits/{dataset}.tsv",
    params:
        seed=config["split"]["seed"],
        holdout_fraction=config["split"]["holdout_fraction"],
        n_folds=config["split"]["n_folds"],
        group_aware=config["split"]["group_aware"],
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "logs/split/{dataset}.log",
    benchmark:
        "benchmarks/split/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/split.py"
