"""The pipeline's stages, defined once.

Each entry names a stage, the module its command runs, the files it reads and
writes (templates from paths.py), the params.yaml sections it reads, and what DVC
shows as metrics and plots. The Snakemake rules (workflow/rules/stages.smk) and
dvc.yaml (written by ``python -m latent_abstractions.pipeline.dvc_yaml``) are both made
from this table; a stage's code dependencies are the import closure of its module
(code_closure.py), so neither engine's copy is kept by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..core.code_closure import closure_files
from ..datasets.registry import EXACT_ORDER, PHASES, kind_of, serves
from . import paths, proxies

STAGE_PACKAGE = "latent_abstractions.stages"
LAUNCHER = "workflow/scripts/run_stage.py"  # finds the environment's interpreter (see its docstring)
LOG = "logs/{stage}/{experiment}.log"


@dataclasses.dataclass(frozen=True)
class Plot:
    """A `dvc plots` definition of a CSV output. Tables in long form (columns x,
    ``series``, ``value``) use the ``series`` template (.dvc/plots/series.json), which
    draws one line per series."""

    path: str
    x: str
    y: str
    template: str | None = None


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    module: str  # under latent_abstractions.stages
    inputs: tuple[str, ...]  # path templates
    outputs: tuple[str, ...]  # path templates (files)
    params: tuple[str, ...]  # sections of the experiment's params
    directories: tuple[str, ...] = ()  # outputs that are directories
    # a run's own working files, read back when it resumes and never outputs (a store's
    # in-progress ``<directory>.partial`` and an atomic write's temporary are implied)
    scratch: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()  # outputs DVC reads as metrics
    plots: tuple[Plot, ...] = ()  # outputs DVC draws
    applies_to: Callable[[dict], bool] = lambda experiment: True
    # the experiment's path outside the repository that the stage reads (hashed by DVC), or None
    external_input: Callable[[dict], str] | None = None
    priority: int = 0  # Snakemake starts higher first: the long jobs, so that short ones fill the gaps

    @property
    def command_module(self) -> str:
        return f"{STAGE_PACKAGE}.{self.module}"

    def log(self, experiment: str) -> str:
        return LOG.format(stage=self.name, experiment=experiment)

    def command(self, experiment: str) -> str:
        return f"python3 {LAUNCHER} {self.module} --experiment {experiment} --log {self.log(experiment)}"

    def code(self) -> list[str]:
        """The stage's code dependencies: its module's import closure inside the package."""
        return closure_files(self.command_module)

    def all_outputs(self) -> tuple[str, ...]:
        return self.outputs + self.directories + self.metrics + tuple(p.path for p in self.plots)

    def own_files(self) -> tuple[str, ...]:
        """What a run may read back of its own: its outputs, a store's in-progress
        ``<directory>.partial`` and its scratch files."""
        return self.all_outputs() + self.scratch + tuple(f"{d}.partial" for d in self.directories)

    def external(self, experiment_params: dict) -> list[str]:
        """Files outside the repository that this experiment's run reads (hashed by DVC)."""
        return [] if self.external_input is None else [self.external_input(experiment_params)]


def _is_file_import(experiment: dict) -> bool:
    """Whether the data set is imported from a file outside the repository."""
    return kind_of(experiment["dataset"]).external_file is not None


def _is_full(experiment: dict) -> bool:
    """Whether the experiment runs the model stages (``scope: full``); ``scope: exact`` runs
    only the data set, its sheets and the exact order."""
    return experiment.get("scope", "full") == "full"


def _has_network(experiment: dict) -> bool:
    """Whether the experiment has a score network: ``scope: full``, or ``scope: generation``
    (the network and the bumps evaluation over training alone: the coupling study's models)."""
    return experiment.get("scope", "full") in ("full", "generation")


def _trains(experiment: dict) -> bool:
    """Whether the pipeline trains the network (``model.kind: trained``)."""
    return _has_network(experiment) and experiment["model"].get("kind", "trained") == "trained"


def _imports_network(experiment: dict) -> bool:
    """Whether the network is an outside diffusers model (``model.kind: diffusers``)."""
    return _has_network(experiment) and experiment["model"].get("kind") == "diffusers"


def _serves_phases(experiment: dict) -> bool:
    """Whether the data set serves the phase study (2-D bumps)."""
    return serves(experiment["dataset"], PHASES)


def _serves_exact_order(experiment: dict) -> bool:
    return serves(experiment["dataset"], EXACT_ORDER)


def _full_and(condition: Callable[[dict], bool] | None = None) -> Callable[[dict], bool]:
    """A full-scope experiment that also meets ``condition`` (any, when None)."""
    return lambda experiment: _is_full(experiment) and (condition is None or condition(experiment))


def _bumps_network(experiment: dict) -> bool:
    return _has_network(experiment) and _serves_phases(experiment)


DATASET = (paths.IMAGES, paths.FACTORS)
LIVE_PLOTS = tuple(Plot(paths.LIVE_PLOT.replace("{metric}", m), "step", m) for m in ("loss", "learning_rate"))


def _series_plot(name: str) -> Plot:
    return Plot(paths.PLOT_DATA.replace("{name}", name), "t", "value", "series")


def _figure(name: str) -> tuple[str, ...]:
    """A figure's PNG and SVG."""
    return tuple(paths.FIGURE.replace("{figure}", name).replace(".png", f".{fmt}") for fmt in ("png", "svg"))


STAGES: tuple[Stage, ...] = (
    Stage(
        "prepare_data",
        "prepare_data",
        inputs=(),
        outputs=DATASET,
        params=("dataset",),
        applies_to=lambda e: not _is_file_import(e),
        priority=10,
    ),  # a priority does not pass to upstream jobs
    Stage(
        "import_shapes3d",
        "prepare_data",
        inputs=(),
        outputs=DATASET,
        params=("dataset",),
        applies_to=_is_file_import,
        external_input=lambda experiment: experiment["dataset"][kind_of(experiment["dataset"]).external_file],
        priority=10,
    ),
    Stage(
        "train_score_model",
        "train_score_model",
        inputs=DATASET,
        outputs=(paths.WEIGHTS, paths.LOSS),
        params=("sde", "model", "train"),
        directories=(paths.CHECKPOINTS,),
        scratch=(paths.PARTIAL,),
        metrics=(paths.LIVE_METRICS,),
        plots=LIVE_PLOTS,
        applies_to=_trains,
        priority=10,
    ),
    Stage(
        "import_model",
        "import_model",
        inputs=DATASET,
        outputs=(paths.WEIGHTS,),
        params=("sde", "model"),
        directories=(paths.CHECKPOINTS,),
        applies_to=_imports_network,
        external_input=lambda experiment: experiment["model"]["path"],
        priority=10,
    ),
    Stage(
        "sample_trajectories",
        "sample_trajectories",
        inputs=DATASET + (paths.WEIGHTS,),  # the data set's factors give the conditions
        outputs=(),
        params=("sde", "model", "sample"),
        directories=(paths.TRAJECTORIES,),
        applies_to=_full_and(),
        priority=4,
    ),
    Stage(
        "fork_trajectories",
        "fork_trajectories",
        inputs=DATASET + (paths.WEIGHTS,),  # the data set's factors give the conditions
        outputs=(),
        params=("sde", "model", "fork"),
        directories=(paths.FORKS,),
        applies_to=_full_and(),
    ),
    Stage(
        "forward_backward",
        "forward_backward",
        inputs=DATASET + (paths.WEIGHTS,),
        outputs=(),
        params=("sde", "model", "forward_backward"),
        directories=(paths.FORWARD_BACKWARD,),
        applies_to=_full_and(),
    ),
    Stage(
        "fit_probes",
        "fit_probes",
        inputs=(paths.TRAJECTORIES,),
        outputs=(paths.PROBES,),
        params=("probes",),
        plots=(_series_plot("probes"),),
        applies_to=_full_and(),
    ),
    Stage(
        "estimate_information",
        "estimate_information",
        inputs=DATASET + (paths.WEIGHTS,),
        outputs=(paths.INFORMATION,),
        params=("sde", "model", "information"),
        metrics=(paths.INFORMATION_METRICS,),
        plots=(_series_plot("information"),),
        applies_to=_full_and(),
        priority=5,
    ),
    Stage(
        "evaluate_generation",
        "evaluate_generation",
        inputs=DATASET + (paths.CHECKPOINTS,),
        outputs=(paths.GENERATION_ACCURACY, paths.GENERATION_REPRESENTATION, paths.GENERATION_EMBEDDING),
        params=("sde", "model", "generation"),
        applies_to=_bumps_network,
        priority=4,
        plots=(Plot(paths.PLOT_DATA.replace("{name}", "generation"), "training_step", "value", "series"),),
    ),
    Stage(
        "train_noise_classifier",
        "train_noise_classifier",
        inputs=DATASET,
        outputs=(paths.CLASSIFIER_WEIGHTS, paths.CLASSIFIER_EVALUATION),
        params=("sde", "model", "classifier"),
        metrics=(paths.CLASSIFIER_METRICS,),
        applies_to=_full_and(),
        priority=5,
    ),
    Stage(
        "analyze_forks",
        "analyze_forks",
        inputs=DATASET + (paths.FORKS, paths.FORWARD_BACKWARD, paths.CLASSIFIER_WEIGHTS),
        outputs=(paths.FORK_ANALYSIS,),
        params=("model",),
        applies_to=_full_and(),
    ),
    Stage(
        "decision_order",
        "decision_order",
        inputs=proxies.sources(),
        outputs=(paths.ORDER, paths.PROXIES),
        params=(),
        applies_to=_full_and(),
    ),
    Stage(
        "exact_order",
        "exact_order",
        inputs=DATASET,
        outputs=(paths.EXACT_INFORMATION, paths.EXACT_DECISIONS),
        params=("sde", "exact_order"),
        plots=(_series_plot("exact_information"),),
        applies_to=_serves_exact_order,
        priority=3,
    ),
    Stage(
        "dataset_sheets",
        "dataset_sheets",
        inputs=DATASET,
        outputs=tuple(path for n in paths.DATASET_FIGURES for path in _figure(n)),
        params=(),
    ),
    Stage(
        "plot_probes",
        "plot_probes",
        inputs=(paths.PROBES, paths.INFORMATION),
        outputs=_figure("probes"),
        params=(),
        applies_to=_full_and(),
    ),
    Stage(
        "plot_information",
        "plot_information",
        inputs=(paths.INFORMATION, paths.CLASSIFIER_EVALUATION),
        outputs=_figure("information"),
        params=(),
        applies_to=_full_and(),
    ),
    Stage(
        "plot_samples",
        "plot_samples",
        inputs=(paths.TRAJECTORIES,),
        outputs=_figure("samples"),
        params=(),
        applies_to=_full_and(),
    ),
    Stage(
        "plot_generation",
        "plot_generation",
        inputs=(paths.GENERATION_ACCURACY, paths.GENERATION_REPRESENTATION, paths.GENERATION_EMBEDDING),
        outputs=_figure("generation") + _figure("representation"),
        params=(),
        applies_to=_bumps_network,
    ),
    Stage(
        "plot_proxies",
        "plot_proxies",
        inputs=(paths.PROXIES,),
        outputs=_figure("proxies"),
        params=(),
        applies_to=_full_and(),
    ),
    Stage(
        "plot_loss",
        "plot_loss",
        inputs=(paths.LOSS,),
        outputs=_figure("loss"),
        params=(),
        applies_to=_trains,
    ),
)


@dataclasses.dataclass(frozen=True)
class ProjectStage:
    """A stage over the whole project (no experiment wildcard): it reads what ``reads``
    lists, for every experiment that makes it, and writes ``outputs``."""

    name: str
    module: str
    reads: tuple[str, ...]  # path templates, expanded over the experiments whose stages write them
    outputs: tuple[str, ...]

    @property
    def command_module(self) -> str:
        return f"{STAGE_PACKAGE}.{self.module}"

    def log(self) -> str:
        return f"logs/{self.name}.log"

    def command(self) -> str:
        return f"python3 {LAUNCHER} {self.module} --log {self.log()}"

    def code(self) -> list[str]:
        return closure_files(self.command_module)

    def inputs(self, params: dict) -> list[str]:
        made: dict[str, set[str]] = {}  # two stages can write one template (prepare_data, import_shapes3d)
        for entry in STAGES:
            for template in entry.all_outputs():
                made.setdefault(template, set()).update(experiments_of(entry, params))
        return sorted({template.format(experiment=name) for template in self.reads for name in made[template]})


def stage(name: str) -> Stage:
    for entry in STAGES:
        if entry.name == name:
            return entry
    raise KeyError(f"no stage {name!r}; the table has: {', '.join(s.name for s in STAGES)}")


def experiments_of(entry: Stage, params: dict) -> list[str]:
    """The experiments in params.yaml that run this stage."""
    return sorted(name for name, experiment in params["experiments"].items() if entry.applies_to(experiment))


def draws_figures(entry: Stage) -> bool:
    """Whether a stage draws figures (its outputs are under an experiment's figures/)."""
    folder = paths.FIGURES_DIR + "/"
    return any(output.startswith(folder) for output in entry.outputs)


REPORT = ProjectStage(
    "report",
    "report",
    outputs=(paths.REPORT, paths.FINDINGS),
    reads=(
        *(
            paths.FIGURE.replace("{figure}", name)
            for name in paths.DATASET_FIGURES + paths.RESULT_FIGURES + paths.STUDY_FIGURES
        ),
        paths.GENERATION_ACCURACY,
        paths.GENERATION_REPRESENTATION,
        paths.INFORMATION_METRICS,
        paths.CLASSIFIER_METRICS,
        paths.ORDER,
        paths.EXACT_DECISIONS,
        # the tables each figure was drawn from: the report lists their dvc.lock md5
        *dict.fromkeys(t for entry in STAGES if draws_figures(entry) for t in entry.inputs),
    ),
)


def final_outputs(params: dict) -> list[str]:
    """What `snakemake` (rule all) and `dvc repro` make: every output of every stage."""
    return sorted(
        template.format(experiment=name)
        for entry in STAGES
        for name in experiments_of(entry, params)
        for template in entry.all_outputs()
    ) + list(REPORT.outputs)
