# Shared by every rule: params validation before any job, experiment names,
# and where the package's source lives (rules list the modules they run as inputs,
# exactly as dvc.yaml lists them as deps).
import sys

from latent_abstractions import params as params_schema

try:
    params_schema.validate(config)
except params_schema.ParamsError as error:
    sys.exit(f"error: {error}")

EXPERIMENTS = sorted(config["experiments"])
FIGURES = ["probes", "information", "samples", "loss", "dataset_contact_sheet", "dataset_traversals"]
PACKAGE = "src/latent_abstractions"


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),


def section(name):
    """The experiment's params.yaml section `name`: a change to it reruns the rule."""
    return lambda wildcards: config["experiments"][wildcards.experiment][name]
