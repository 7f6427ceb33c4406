# Shared by every rule: params validation before any job, the stage table, and the
# interpreter that jobs run with.
import os
import sys

from latent_abstractions.pipeline import locks
from latent_abstractions.pipeline import params as params_schema
from latent_abstractions.core.errors import InputError
from latent_abstractions.pipeline import stage_table

try:
    for _file in workflow.configfiles:  # Snakemake's loader keeps the last of a key given twice
        params_schema.read_yaml(_file)
    params_schema.validate(config)
except params_schema.ParamsError as error:
    sys.exit(f"error: {error}")

# Every job computes with the config planned here, overrides (--configfile, --config)
# included: it is written once, named by its hash, and jobs read it (cli.default_params).
os.environ["LATENT_ABSTRACTIONS_PARAMS"] = params_schema.write_planned(config, ".snakemake/planned-params")

# Jobs run with the interpreter running Snakemake (workflow/scripts/run_stage.py reads
# this), so an environment need not be activated; cluster jobs inherit it.
os.environ["LATENT_ABSTRACTIONS_PYTHON"] = sys.executable


envvars:
    "LATENT_ABSTRACTIONS_PYTHON",
    "LATENT_ABSTRACTIONS_PARAMS",


EXPERIMENTS = sorted(config["experiments"])


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),


def section(name):
    """The experiment's params.yaml section `name`: a change to it reruns the rule."""
    return lambda wildcards: config["experiments"][wildcards.experiment][name]


def command_of(stage):
    """The stage's shell command for a job's experiment."""
    return lambda wildcards: stage.command(wildcards.experiment)


def external_of(stage):
    """The stage's files outside the repository, for a job's experiment."""
    return lambda wildcards: stage.external(config["experiments"][wildcards.experiment])


def report_output(path):
    """A figure's PNG carried into `snakemake --report` with its caption (written here from
    the drawing function's, under .snakemake/), under its experiment; other outputs as they are."""
    if not path.endswith(".png"):
        return path
    from latent_abstractions.report.plotting import FIGURE_CAPTIONS

    name = os.path.basename(path)[: -len(".png")]
    if name not in FIGURE_CAPTIONS:  # a figure without a caption yet: still an output, not in the report
        return path
    caption = os.path.join(".snakemake", "report-captions", f"{name}.rst")
    os.makedirs(os.path.dirname(caption), exist_ok=True)
    with open(caption, "w") as handle:
        handle.write(FIGURE_CAPTIONS[name] + "\n")
    return report(path, caption=os.path.abspath(caption), category="{experiment}", subcategory=name)
