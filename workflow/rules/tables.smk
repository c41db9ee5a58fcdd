# Every probe file -> the paper table (a pure aggregation, rerun whenever any probe file changes).


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
        summary="results/tables/summary.tsv",
    params:
        models=configured_models(),
        datasets=configured_datasets(),
        table=config["table"],
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "logs/paper_table/all.log",
    benchmark:
        "benchmarks/paper_table/all.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/paper_table.py"
