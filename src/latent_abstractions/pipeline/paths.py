"""Where each experiment's artifacts live under data/: written once, here.

Every path is a template with an ``{experiment}`` field. The stage table
(stage_table.py) lists these templates as the stages' inputs and outputs for
Snakemake and dvc.yaml; the stages ask ``ExperimentPaths(experiment)`` for the files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

DATASET_DIR = "data/{experiment}/dataset"
IMAGES = DATASET_DIR + "/images.npy"
FACTORS = DATASET_DIR + "/factors.parquet"
MODEL_DIR = "data/{experiment}/model"
WEIGHTS = MODEL_DIR + "/weights.safetensors"
LOSS = MODEL_DIR + "/loss.parquet"
CHECKPOINTS = MODEL_DIR + "/checkpoints"  # EMA snapshots at log-spaced steps, step_<n>.safetensors
LIVE = MODEL_DIR + "/live"  # training metrics and curves, in dvclive's layout
LIVE_METRICS = LIVE + "/metrics.json"
LIVE_PLOT = LIVE + "/plots/metrics/train/{metric}.tsv"
PARTIAL = MODEL_DIR + "/.partial"  # training in progress; never a pipeline output
CLASSIFIER_DIR = "data/{experiment}/classifier"
CLASSIFIER_WEIGHTS = CLASSIFIER_DIR + "/weights.safetensors"
CLASSIFIER_EVALUATION = CLASSIFIER_DIR + "/evaluation.parquet"
CLASSIFIER_METRICS = CLASSIFIER_DIR + "/metrics.json"  # clean accuracy on unseen images, bound against exact
GENERATION_DIR = "data/{experiment}/generation"
GENERATION_ACCURACY = GENERATION_DIR + "/accuracy.parquet"
GENERATION_REPRESENTATION = GENERATION_DIR + "/representation.parquet"
GENERATION_EMBEDDING = GENERATION_DIR + "/embedding.parquet"  # 2-D pictures of the phase tap's manifold
TRAJECTORIES = "data/{experiment}/trajectories"  # a store directory (layout: store_layout.py)
FORKS = "data/{experiment}/forks"  # fork store: branches from parents at fork times
FORWARD_BACKWARD = "data/{experiment}/forward_backward"  # store of regenerated noised images
PROBES = "data/{experiment}/probes.parquet"
INFORMATION = "data/{experiment}/information.parquet"
INFORMATION_METRICS = "data/{experiment}/information_metrics.json"  # learned vs exact, for `dvc exp show`
FORK_ANALYSIS = "data/{experiment}/fork_analysis.parquet"  # fork entropy, forward-backward agreement
ORDER = "data/{experiment}/order.parquet"  # when each factor is decided, by each proxy
PROXIES = "data/{experiment}/proxies.parquet"  # the proxy curves the order is read from
EXACT_INFORMATION = "data/{experiment}/exact_information.parquet"  # exact I(factor; X_t) from the data alone
EXACT_DECISIONS = "data/{experiment}/exact_decisions.parquet"  # when each factor is decided by the exact curve
REPORT = "data/report.html"  # the project's one report, over every experiment
FINDINGS = "data/findings.md"  # the report's findings, for a terminal (`cat`)
FIGURES_DIR = "data/{experiment}/figures"
FIGURE = FIGURES_DIR + "/{figure}.png"
PLOT_DATA = "data/{experiment}/plots/{name}.csv"  # wide tables for `dvc plots`

# The figures of one experiment: each drawn by its own stage from only the tables it shows.
DATASET_FIGURES = ("dataset_contact_sheet", "dataset_traversals")
RESULT_FIGURES = ("probes", "information", "samples", "loss")
STUDY_FIGURES = ("generation", "representation", "proxies")  # generation, representation: bumps only


def _at(template: str):
    """A field of ExperimentPaths filled from ``template``."""
    return dataclasses.field(init=False, metadata={"template": template})


@dataclasses.dataclass(frozen=True)
class ExperimentPaths:
    """Every file of one experiment, from the templates above: ``ExperimentPaths("bumps").weights``."""

    experiment: str
    dataset_dir: Path = _at(DATASET_DIR)
    images: Path = _at(IMAGES)
    factors: Path = _at(FACTORS)
    model_dir: Path = _at(MODEL_DIR)
    weights: Path = _at(WEIGHTS)
    loss_table: Path = _at(LOSS)
    checkpoints_dir: Path = _at(CHECKPOINTS)
    live_metrics: Path = _at(LIVE_METRICS)
    partial_dir: Path = _at(PARTIAL)
    classifier_weights: Path = _at(CLASSIFIER_WEIGHTS)
    classifier_evaluation: Path = _at(CLASSIFIER_EVALUATION)
    classifier_metrics: Path = _at(CLASSIFIER_METRICS)
    generation_accuracy: Path = _at(GENERATION_ACCURACY)
    generation_representation: Path = _at(GENERATION_REPRESENTATION)
    generation_embedding: Path = _at(GENERATION_EMBEDDING)
    trajectories: Path = _at(TRAJECTORIES)
    forks: Path = _at(FORKS)
    forward_backward: Path = _at(FORWARD_BACKWARD)
    probes: Path = _at(PROBES)
    information: Path = _at(INFORMATION)
    information_metrics: Path = _at(INFORMATION_METRICS)
    fork_analysis: Path = _at(FORK_ANALYSIS)
    order: Path = _at(ORDER)
    proxies: Path = _at(PROXIES)
    exact_information: Path = _at(EXACT_INFORMATION)
    exact_decisions: Path = _at(EXACT_DECISIONS)
    figures_dir: Path = _at(FIGURES_DIR)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if "template" in field.metadata:
                object.__setattr__(self, field.name, self._fill(field.metadata["template"]))

    def _fill(self, template: str, **fields: str) -> Path:
        return Path(template.format(experiment=self.experiment, **fields))

    @property
    def dataset_files(self) -> list[Path]:
        return [self.images, self.factors]

    def live_plot(self, metric: str) -> Path:
        return self._fill(LIVE_PLOT, metric=metric)

    def figure(self, name: str) -> Path:
        return self._fill(FIGURE, figure=name)

    def plot_data(self, name: str) -> Path:
        return self._fill(PLOT_DATA, name=name)
