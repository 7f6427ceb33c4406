"""What every figure stage shares: draw a group of an experiment's figures from the files
its stage-table entry declares (in their order), and save each as PNG and SVG under
data/<experiment>/figures/, carrying its provenance (inputs' hashes, params hash, code
hash, git commit) and its caption. Each group has its own stage module (plot_*.py,
dataset_sheets.py), so that editing one group's drawing code reruns that group alone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..core.artifacts import provenance, read_input_table
from ..core.progress import Progress
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..pipeline.stage_table import stage
from ..report.figure_style import save_figure

log = logging.getLogger("figures")


class Drawn(NamedTuple):
    """One figure of a group, the tables it was drawn from, and the function that drew it
    (whose caption goes with the figure)."""

    figure: object
    inputs: list[Path]
    draw: Callable


def tables_figure(name: str, sources: list[Path], draw: Callable) -> dict[str, Drawn]:
    """A figure drawn from whole tables, in the order of ``sources``."""
    tables = [read_input_table(path).to_pandas() for path in sources]
    return {name: Drawn(draw(*tables), sources, draw)}


def draw_group(name: str, experiment: str, group: Callable[[list[Path]], dict[str, Drawn]]) -> None:
    """Stage ``name``: draw ``group`` from the stage's declared inputs and save its figures."""
    files = ExperimentPaths(experiment)
    sources = [Path(template.format(experiment=experiment)) for template in stage(name).inputs]
    drawn = group(sources)
    with Progress(len(drawn), f"figures {experiment}", "figure") as progress:
        for figure_name, (figure, inputs, draw) in drawn.items():
            meta = provenance(name, experiment, {}, inputs)
            save_figure(figure, files.figure(figure_name), meta, caption=draw.caption)
            progress.update(1)
    log.info("wrote %s", ", ".join(str(files.figure(figure_name)) for figure_name in drawn))


def run_group(name: str, group: Callable[[list[Path]], dict[str, Drawn]]) -> None:
    """The command line of a figure stage."""
    run_step(name, lambda experiment, params: draw_group(name, experiment, group))
