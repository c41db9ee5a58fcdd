# Every probe file -> the paper table and its comparison with the published one (pure aggregations); hold-out
# predictions -> paired tests per dataset; few-shot and zero-shot files -> their tables.


rule paper_table:
    input:
        probes=probe_targets(),
        weights=expand("results/weights/{model}.json", model=config["models"]),
        embeddings=embedding_targets(),
    output:
        table="results/tables/paper_table.tsv",
        html=report(
            "results/tables/paper_table.html",
            caption="../report/paper_table.rst",
            category="Tables",
            labels={"table": "paper table"},
        ),
        markdown="results/tables/paper_table.md",
        latex="results/tables/paper_table.tex",
        summary="results/tables/summary.tsv",
        vs_published="results/tables/vs_published.tsv",
        vs_published_html=report(
            "results/tables/vs_published.html",
            caption="../report/vs_published.rst",
            category="Tables",
            labels={"table": "vs published"},
        ),
        vs_published_md="results/tables/vs_published.md",
    log:
        "logs/paper_table/all.log",
    benchmark:
        "benchmarks/paper_table/all.tsv"
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
        table=config["table"],
        published=workflow_file(config["published_table"]),
    script:
        "../scripts/paper_table.py"


rule paired_tests:
    input:
        predictions=expand("results/probe/{{dataset}}/{model}.predictions.tsv", model=config["models"]),
    output:
        table="results/tables/paired/{dataset}.tsv",
        html=report(
            "results/tables/paired/{dataset}.html",
            caption="../report/paired_tests.rst",
            category="Tables",
            subcategory="paired tests",
            labels={"dataset": "{dataset}"},
        ),
    log:
        "logs/paired_tests/{dataset}.log",
    benchmark:
        "benchmarks/paired_tests/{dataset}.tsv"
    localrule: True
    conda:
        "../envs/probe.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=config["models"],
        permutations=config["paired"]["permutations"],
        seed=config["paired"]["seed"],
    script:
        "../scripts/paired_tests.py"


rule fewshot_table:
    input:
        tables=expand("results/fewshot/{dataset}/{model}.tsv", dataset=config["datasets"], model=config["models"]),
    output:
        table="results/tables/fewshot.tsv",
        markdown="results/tables/fewshot.md",
        html=report(
            "results/tables/fewshot.html",
            caption="../report/fewshot_table.rst",
            category="Tables",
            labels={"table": "few-shot"},
        ),
        shots_table="results/tables/fewshot_shots.tsv",
        shots_markdown="results/tables/fewshot_shots.md",
        shots_html=report(
            "results/tables/fewshot_shots.html",
            caption="../report/fewshot_table.rst",
            category="Tables",
            labels={"table": "few-shot by K"},
        ),
        shots_figure=report(
            "results/figures/fewshot_shots.png",
            caption="../report/fewshot_table.rst",
            category="Few-shot",
            labels={"figure": "few-shot: accuracy against K"},
        ),
    log:
        "logs/fewshot_table/all.log",
    benchmark:
        "benchmarks/fewshot_table/all.tsv"
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
        "../scripts/protocol_table.py"


rule zeroshot_table:
    input:
        tables=expand("results/zeroshot/{dataset}/{model}.tsv", dataset=config["datasets"], model=zeroshot_models()),
    output:
        table="results/tables/zeroshot.tsv",
        markdown="results/tables/zeroshot.md",
        html=report(
            "results/tables/zeroshot.html",
            caption="../report/zeroshot_table.rst",
            category="Tables",
            labels={"table": "zero-shot"},
        ),
    log:
        "logs/zeroshot_table/all.log",
    benchmark:
        "benchmarks/zeroshot_table/all.tsv"
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
        "../scripts/protocol_table.py"


rule runtimes:
    input:
        analysis_outputs(),
    output:
        table="results/tables/runtimes.tsv",
        html=report(
            "results/tables/runtimes.html",
            caption="../report/runtimes.rst",
            category="Runtime",
            labels={"table": "runtime per rule"},
        ),
        figure=report(
            "results/figures/runtimes.png",
            caption="../report/runtimes.rst",
            category="Runtime",
            labels={"figure": "runtime per rule"},
        ),
    log:
        "logs/runtimes/all.log",
    localrule: True
    conda:
        "../envs/umap.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # beside results/ (under a module's prefix: when there is one); rules named as their benchmark folders are
        benchmarks=lambda wildcards, output: str(Path(output.table).parents[2] / "benchmarks"),
        rule_order=lambda wildcards: benchmark_rule_order(),
    script:
        "../scripts/runtimes.py"
