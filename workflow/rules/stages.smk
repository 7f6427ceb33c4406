# One rule per entry of the stage table (src/latent_abstractions/pipeline/stage_table.py), which
# dvc.yaml is generated from too: names, commands, inputs, outputs and params agree by
# construction. A stage's code inputs are the import closure of its module.
# What runs late (the shell command, input functions) reads its stage through a function
# made for that stage (common.smk): a rule's shell command is evaluated when the job
# runs, when the loop variable would name the last stage.


for _stage in stage_table.STAGES:
    _experiments = stage_table.experiments_of(_stage, config)
    if not _experiments:
        continue

    rule:
        name:
            _stage.name
        input:
            code=_stage.code(),
            data=list(_stage.inputs),
            external=external_of(_stage),
        output:
            *[report_output(path) for path in _stage.outputs],
            *[directory(path) for path in _stage.directories],
            *_stage.metrics,
            *[plot.path for plot in _stage.plots],
        log:
            _stage.log("{experiment}"),
        wildcard_constraints:
            experiment="|".join(_experiments),
        priority: _stage.priority
        params:
            **{name: section(name) for name in _stage.params},
            command=command_of(_stage),
        shell:
            "{params.command}"


rule report:
    input:
        code=stage_table.REPORT.code(),
        data=stage_table.REPORT.inputs(config),
    output:
        *stage_table.REPORT.outputs,
    log:
        stage_table.REPORT.log(),
    shell:
        stage_table.REPORT.command()
