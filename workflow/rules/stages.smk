# One rule per entry of the stage table (src/latent_abstractions/stage_table.py), which
# dvc.yaml is generated from too: names, commands, inputs, outputs and params agree by
# construction. A stage's code inputs are the import closure of its module.
# Rules are made inside a function: a rule's shell command is evaluated again when
# the job runs, and a loop variable would by then name the last stage.


def stage_rule(_stage, _experiments):
    rule:
        name:
            _stage.name
        input:
            code=_stage.code(),
            data=list(_stage.inputs),
            external=lambda wildcards: _stage.external(config["experiments"][wildcards.experiment]),
        output:
            *_stage.outputs,
            *[directory(path) for path in _stage.directories],
            *_stage.metrics,
            *[plot.path for plot in _stage.plots],
        params:
            **{name: section(name) for name in _stage.params},
        log:
            _stage.log("{experiment}"),
        wildcard_constraints:
            experiment="|".join(_experiments),
        priority: _stage.priority
        shell:
            _stage.command("{wildcards.experiment}")


for _entry in stage_table.STAGES:
    if stage_table.experiments_of(_entry, config):
        stage_rule(_entry, stage_table.experiments_of(_entry, config))


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
