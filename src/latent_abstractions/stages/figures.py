"""Pipeline step: one group of an experiment's figures (``--figures``) as PNG and SVG
under data/<experiment>/figures/, each carrying its provenance (inputs' hashes, params
hash, code hash, git commit) in its metadata."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..core.artifacts import provenance, read_input_table
from ..core.progress import Progress
from ..datasets import base
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..report import plotting
from ..report.figure_style import save_figure
from ..store import trajectories

log = logging.getLogger("figures")


def final_samples(store: trajectories.Store) -> tuple[np.ndarray, pd.DataFrame]:
    """The final image of the first trajectory at each requested condition."""
    images = store.final_images()
    requested = pd.DataFrame(store.requested_factors())
    first = ~requested.duplicated().to_numpy()
    return images[first], requested[first].reset_index(drop=True)


class Drawn(NamedTuple):
    """One figure of a group, the tables it was drawn from, and the function that drew it
    (whose caption goes with the figure)."""

    figure: object
    inputs: list[Path]
    draw: Callable


def samples_figure(files: ExperimentPaths) -> dict[str, Drawn]:
    store = trajectories.open_store(files.trajectories, "trajectories")
    return {"samples": Drawn(plotting.sample_grid(*final_samples(store)), [files.trajectories], plotting.sample_grid)}


def dataset_figures(files: ExperimentPaths) -> dict[str, Drawn]:
    dataset = base.load(files.dataset_dir)
    title = f"{files.experiment}: {len(dataset.images)} images"
    # The stored (memory-mapped) images: only the drawn ones are read.
    sheet = plotting.contact_sheet(dataset.images, title)
    traversals = plotting.traversals(dataset.images, base.traversal_rows(dataset))
    return {
        "dataset_contact_sheet": Drawn(sheet, files.dataset_files, plotting.contact_sheet),
        "dataset_traversals": Drawn(traversals, files.dataset_files, plotting.traversals),
    }


def tables_figure(name: str, sources: list[Path], draw: Callable) -> dict[str, Drawn]:
    """A figure drawn from whole tables, in the order of ``sources``."""
    tables = [read_input_table(path).to_pandas() for path in sources]
    return {name: Drawn(draw(*tables), sources, draw)}


def generation_figures(files: ExperimentPaths) -> dict[str, Drawn]:
    sources = [files.generation_accuracy, files.generation_representation]
    return {
        **tables_figure("generation", sources, plotting.generation_over_training),
        **tables_figure("representation", [files.generation_embedding], plotting.representation_pictures),
    }


# Each group is drawn by its own stage from only the files it shows, so that a
# change upstream of one figure redraws that figure alone.
GROUPS = {
    "dataset": dataset_figures,
    "probes": lambda f: tables_figure("probes", [f.probes, f.information], plotting.probe_scores),
    "information": lambda f: tables_figure(
        "information", [f.information, f.classifier_evaluation], plotting.mutual_information
    ),
    "generation": generation_figures,
    "proxies": lambda f: tables_figure("proxies", [f.proxies], plotting.proxy_curves),
    "samples": samples_figure,
    "loss": lambda f: tables_figure("loss", [f.loss_table], plotting.training_loss),
}


def figures_step(experiment: str, params: dict, figures: str) -> None:
    files = ExperimentPaths(experiment)
    drawn = GROUPS[figures](files)
    with Progress(len(drawn), f"figures {experiment}", "figure") as progress:
        for name, (figure, inputs, draw) in drawn.items():
            meta = provenance("figures", experiment, {}, inputs)
            save_figure(figure, files.figure(name), meta, caption=draw.caption)
            progress.update(1)
    log.info("wrote %s", ", ".join(str(files.figure(name)) for name in drawn))


def options(parser) -> None:
    parser.add_argument("--figures", required=True, choices=sorted(GROUPS), help="which figures to draw")


if __name__ == "__main__":
    run_step("figures", figures_step, options=options)
