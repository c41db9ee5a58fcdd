# Every probe file -> the paper table and its comparison with the published one (pure aggregations); hold-out
# predictions -> paired tests per dataset; few-shot and zero-shot files -> their tables.


rule paper_table:
    input:
        probes=probe_targets(),
        weights=expand("results/weights/{model}.json", model=config["models"]),
    output:
        table=report(
            "results/tables/paper_table.tsv",
            caption="../report/paper_table.rst",
            category="Tables",
            labels={"table": "paper table"},
        ),
        markdown="results/tables/paper_table.md",
        latex="results/tables/paper_table.tex",
        summary="results/tables/summary.tsv",
        vs_published=report(
            "results/tables/vs_published.tsv",
            caption="../report/vs_published.rst",
            category="Tables",
            labels={"table": "vs published"},
        ),
        vs_published_md="results/tables/vs_published.md",
    params:
        models=configured_models(),
        datasets=configured_datasets(),
        table=config["table"],
        published=str(REPO / config["published_table"]),
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "logs/paper_table/all.log",
    benchmark:
        "benchmarks/paper_table/all.tsv"
    conda:
        "../../envs/probe.yaml"
    script:
        "../scripts/paper_table.py"


rule paired_tests:
    input:
        predictions=expand("results/probe/{{dataset}}/{model}.predictions.tsv", model=config["models"]),
    output:
        table=report(
            "results/tables/paired/{dataset}.tsv",
            caption="../report/paired_tests.rst",
            category="Tables",
            subcategory="paired tests",
            labels={"dataset": "{dataset}"},
        ),
    params:
        models=config["models"],
        permutations=config["paired"]["permutations"],
        seed=config["paired"]["seed"],
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "logs/paired_tests/{dataset}.log",
    benchmark:
        "benchmarks/paired_tests/{dataset}.tsv"
    conda:
        "../../envs/probe.yaml"
    script:
        "../scripts/paired_tests.py"


rule fewshot_table:
    input:
        tables=expand("results/fewshot/{dataset}/{model}.tsv", dataset=config["datasets"], model=config["models"]),
    output:
        table="results/tables/fewshot.tsv",
        markdown="results/tables/fewshot.md",
    params:
        models=configured_models(),
        datasets=configured_datasets(),
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "logs/fewshot_table/all.log",
    benchmark:
        "benchmarks/fewshot_table/all.tsv"
    conda:
        "../../envs/probe.yaml"
    script:
        "../scripts/protocol_table.py"


rule zeroshot_table:
    input:
        tables=expand("results/zeroshot/{dataset}/{model}.tsv", dataset=config["datasets"], model=zeroshot_models()),
    output:
        table="results/tables/zeroshot.tsv",
        markdown="results/tables/zeroshot.md",
    params:
        models=configured_models(),
        datasets=configured_datasets(),
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "logs/zeroshot_table/all.log",
    benchmark:
        "benchmarks/zeroshot_table/all.tsv"
    conda:
        "../../envs/probe.yaml"
    script:
        "../scripts/protocol_table.py"
