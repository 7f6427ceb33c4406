"""Pipeline step: one group of an experiment's figures (``--figures``) as PNG and SVG
under data/<experiment>/figures/, each carrying its provenance (inputs' hashes, params
hash, code hash, git commit) in its metadata."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths, plotting, trajectories
from ..artifacts import provenance, read_input_table
from ..cli import run_step
from ..datasets import base
from ..figure_style import save_figure

log = logging.getLogger("figures")


def final_samples(store: trajectories.Store) -> tuple[np.ndarray, pd.DataFrame]:
    """The final image of the first trajectory at each requested condition."""
    images = store.final_images()
    requested = pd.DataFrame(store.requested_factors())
    first = ~requested.duplicated().to_numpy()
    return images[first], requested[first].reset_index(drop=True)


def samples_figure(experiment: str) -> dict[str, tuple]:
    store = trajectories.open_store(paths.trajectories(experiment), "trajectories")
    figure = plotting.sample_grid(*final_samples(store))
    return {"samples": (figure, [paths.trajectories(experiment)])}


def dataset_figures(experiment: str) -> dict[str, tuple]:
    dataset_dir = paths.dataset_dir(experiment)
    dataset = base.load(dataset_dir)
    inputs = paths.dataset_files(experiment)
    title = f"{experiment}: {len(dataset.images)} images"
    # The stored (memory-mapped) images: only the drawn ones are read.
    return {
        "dataset_contact_sheet": (plotting.contact_sheet(dataset.images, title), inputs),
        "dataset_traversals": (plotting.traversals(dataset.images, base.traversal_rows(dataset)), inputs),
    }


def probes_figure(experiment: str) -> dict[str, tuple]:
    sources = [paths.probes(experiment), paths.information(experiment)]
    probes, info = (read_input_table(path).to_pandas() for path in sources)
    return {"probes": (plotting.probe_scores(probes, info), sources)}


def information_figure(experiment: str) -> dict[str, tuple]:
    sources = [paths.information(experiment), paths.classifier_evaluation(experiment)]
    info, bound = (read_input_table(path).to_pandas() for path in sources)
    return {"information": (plotting.mutual_information(info, bound), sources)}


def generation_figures(experiment: str) -> dict[str, tuple]:
    sources = [paths.generation_accuracy(experiment), paths.generation_representation(experiment)]
    accuracy, representation = (read_input_table(path).to_pandas() for path in sources)
    embedding = read_input_table(paths.generation_embedding(experiment)).to_pandas()
    return {
        "generation": (plotting.generation_over_training(accuracy, representation), sources),
        "representation": (plotting.representation_pictures(embedding), [paths.generation_embedding(experiment)]),
    }


def table_figure(name: str, source: Path, draw) -> dict[str, tuple]:
    return {name: (draw(read_input_table(source)), [source])}


# Each group is drawn by its own stage from only the files it shows, so that a
# change upstream of one figure redraws that figure alone.
GROUPS = {
    "dataset": dataset_figures,
    "probes": probes_figure,
    "information": information_figure,
    "generation": generation_figures,
    "proxies": lambda e: table_figure("proxies", paths.proxies(e), lambda t: plotting.proxy_curves(t.to_pandas())),
    "samples": samples_figure,
    "loss": lambda e: table_figure("loss", paths.loss_table(e), lambda t: plotting.training_loss(t.to_pandas())),
}


def figures_step(experiment: str, params: dict, figures: str) -> None:
    drawn = GROUPS[figures](experiment)
    for name, (figure, inputs) in drawn.items():
        save_figure(figure, paths.figure(experiment, name), provenance("figures", experiment, {}, inputs))
    log.info("wrote %s", ", ".join(str(paths.figure(experiment, name)) for name in drawn))


def options(parser) -> None:
    parser.add_argument("--figures", required=True, choices=sorted(GROUPS), help="which figures to draw")


if __name__ == "__main__":
    run_step("figures", figures_step, options=options)
