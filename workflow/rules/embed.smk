# Manifest + fetched weights -> the HDF5 embedding file of one (dataset, model), with the hub offline.
# Neural models ask for a GPU (`--resources gpu=1`); threads feed the DataLoader.


rule embed:
    input:
        manifest="results/manifests/{dataset}.tsv",
        weights="results/weights/{model}.json",
    output:
        embeddings="results/embeddings/{dataset}/{model}.h5",
    log:
        "logs/embed/{dataset}/{model}.log",
    benchmark:
        "benchmarks/embed/{dataset}/{model}.tsv"
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
        # DICOMs stored inverted (VinDr): read by file-level loaders such as the DLILP study's
        invert=lambda wildcards: bool(DATASETS[wildcards.dataset].get("dicom", {}).get("invert", False)),
        device=config["embed"]["device"],
        max_failed=config["embed"]["max_failed"],
        amp=config["embed"]["amp"],
        jpeg_draft=config["embed"]["jpeg_draft"],
        channels_last=config["embed"]["channels_last"],
        weights_dir=config["weights_dir"] or "",
    script:
        "../scripts/embed.py"
