# The pipeline: params.yaml is the single source of truth (DVC reads it too); the
# stages are defined once in src/latent_abstractions/stage_table.py.
# Run with `snakemake --workflow-profile workflow/profiles/default` (or `make run`).
configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"


onstart:
    # One engine at a time in this repository (locks.py): taken before the first job.
    try:
        locks.hold_repository()
    except InputError as error:
        sys.exit(f"error: {error}")


rule all:
    default_target: True
    input:
        stage_table.final_outputs(config),
