# The pipeline: params.yaml is the single source of truth (DVC reads it too).
# Run with `snakemake --workflow-profile workflow/profiles/default` (or `make run`).
configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        expand("data/{experiment}/figures/{figure}.png", experiment=EXPERIMENTS, figure=FIGURES),
