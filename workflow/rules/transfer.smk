# The DLILP study's protocol (medprobe.transfer): per (dataset, model) the K-shot logistic-regression probe over the
# authors' folds, then Table 4's layout, the comparison with the published Table 4 and the few-shot views.


rule transfer:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
    output:
        transfer="results/transfer/{dataset}/{model}.tsv",
    log:
        "logs/transfer/{dataset}/{model}.log",
    benchmark:
        "benchmarks/transfer/{dataset}/{model}.tsv"
    conda:
        "../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        transfer=TRANSFER,
    script:
        "../scripts/transfer.py"


rule transfer_tables:
    input:
        tables=transfer_targets(),
    output:
        summary="results/tables/transfer_summary.tsv",
        table="results/tables/table4.tsv",
        markdown="results/tables/table4.md",
        latex="results/tables/table4.tex",
        html=report(
            "results/tables/table4.html",
            caption="../report/table4.rst",
            category="Tables",
            labels={"table": "DLILP Table 4"},
        ),
        vs_published="results/tables/table4_vs_published.tsv",
        vs_published_md="results/tables/table4_vs_published.md",
        vs_published_html=report(
            "results/tables/table4_vs_published.html",
            caption="../report/table4_vs_published.rst",
            category="Tables",
            labels={"table": "DLILP Table 4 vs published"},
        ),
        shots_table="results/tables/transfer_shots.tsv",
        shots_markdown="results/tables/transfer_shots.md",
        shots_html=report(
            "results/tables/transfer_shots.html",
            caption="../report/transfer_shots.rst",
            category="Tables",
            labels={"table": "DLILP protocol by K"},
        ),
        shots_figure=report(
            "results/figures/transfer_shots.png",
            caption="../report/transfer_shots.rst",
            category="Few-shot",
            labels={"figure": "DLILP protocol: ACA against K"},
        ),
    log:
        "logs/transfer_tables/all.log",
    benchmark:
        "benchmarks/transfer_tables/all.tsv"
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
        transfer=TRANSFER,
        published=workflow_file(TRANSFER["published"]),
    script:
        "../scripts/transfer_tables.py"


# The study's zero-shot protocol (medprobe.cxr_zeroshot): per (dataset, model) every prompt set on fold 0, then
# Table 3's layout and the comparison with the published Table 3.
rule dlilp_zeroshot:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
        weights="results/weights/{model}.json",
    output:
        zeroshot="results/dlilp_zeroshot/{dataset}/{model}.tsv",
    log:
        "logs/dlilp_zeroshot/{dataset}/{model}.log",
    benchmark:
        "benchmarks/dlilp_zeroshot/{dataset}/{model}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        model=lambda wildcards: MODELS[wildcards.model],
        zeroshot=TRANSFER_ZEROSHOT,
        weights_dir=config["weights_dir"] or "",
    script:
        "../scripts/dlilp_zeroshot.py"


rule table3_tables:
    input:
        tables=transfer_zeroshot_targets(),
    output:
        table="results/tables/table3.tsv",
        markdown="results/tables/table3.md",
        latex="results/tables/table3.tex",
        html=report(
            "results/tables/table3.html",
            caption="../report/table3.rst",
            category="Tables",
            labels={"table": "DLILP Table 3"},
        ),
        vs_published="results/tables/table3_vs_published.tsv",
        vs_published_md="results/tables/table3_vs_published.md",
        vs_published_html=report(
            "results/tables/table3_vs_published.html",
            caption="../report/table3_vs_published.rst",
            category="Tables",
            labels={"table": "DLILP Table 3 vs published"},
        ),
    log:
        "logs/table3_tables/all.log",
    benchmark:
        "benchmarks/table3_tables/all.tsv"
    localrule: True
    conda:
        "../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models={m: MODELS[m] for m in transfer_zeroshot_models()},
        datasets=transfer_zeroshot_datasets(),
        zeroshot=TRANSFER_ZEROSHOT,
        published=workflow_file(TRANSFER_ZEROSHOT["published"]),
    script:
        "../scripts/table3.py"
