"""Rule bias_figure: the models of one dataset ranked by text decodability and shortcut drop, and the overlaid images."""
import os
import sys

# this workflow's own medprobe (workflow/rules/common.smk sets it: the checkout's src/, or a module's copy)
sys.path.insert(0, os.environ.get("MEDPROBE_LIBRARY") or f"{snakemake.scriptdir}/../../src")

import pandas as pd  # noqa: E402

from medprobe.logs import logged  # noqa: E402
from medprobe.manifest import class_names_of, read_manifest  # noqa: E402
from medprobe.typographic import bias_figure, example_panel  # noqa: E402

with logged(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.table, sep="\t")
    bias_figure(table, snakemake.wildcards.dataset, snakemake.params.models, snakemake.output.figure)
    names = class_names_of(read_manifest(snakemake.input.manifest), snakemake.params.classes)
    example_panel(snakemake.input.manifest, snakemake.input.split, snakemake.params.bias, names,
                  snakemake.output.examples, seed=snakemake.params.seed)
