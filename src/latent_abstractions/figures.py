"""Pipeline step: every figure of one experiment as PNG under data/<experiment>/figures/,
each carrying its inputs' hashes in a PNG text chunk."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from . import paths, plotting, trajectories
from .artifacts import atomic_path, provenance
from .cli import InputError, run_step
from .datasets import base

log = logging.getLogger("figures")

FIGURE_NAMES = ("probes", "information", "samples", "loss", "dataset_contact_sheet", "dataset_traversals")


def save_png(figure, target: Path, meta: dict) -> None:
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png", dpi=110, metadata={"provenance": json.dumps(meta)})
    plotting.plt.close(figure)


def final_samples(table, per_position: int) -> tuple[np.ndarray, pd.DataFrame]:
    """The final denoised image of the first trajectory at each requested position."""
    layout_shape = tuple(trajectories.read_layout_from_table(table)["image_shape"])
    step = table.column("step").to_numpy()
    last = step == step.max()
    images = trajectories.vector_column(table, "denoised")[last].reshape((-1,) + layout_shape)
    requested = pd.DataFrame({
        name.removeprefix("requested_"): table.column(name).to_numpy()[last]
        for name in table.column_names if name.startswith("requested_")
    })
    first = np.arange(len(images)) % per_position == 0
    return images[first], requested[first].reset_index(drop=True)


def figures_step(experiment: str, params: dict) -> None:
    sources = {
        "probes": paths.probes(experiment), "information": paths.information(experiment),
        "trajectories": paths.trajectories(experiment), "loss": paths.loss_table(experiment),
    }
    dataset_dir = paths.dataset_dir(experiment)
    dataset_files = [dataset_dir / base.IMAGES_FILE, dataset_dir / base.FACTORS_FILE]
    try:
        tables = {name: pq.read_table(path) for name, path in sources.items()}
        dataset = base.load(dataset_dir)
    except (OSError, ValueError) as exc:
        raise InputError(str(exc)) from None
    images, requested = final_samples(tables["trajectories"], params["sample"]["per_position"])
    drawn = {
        "probes": (plotting.probe_scores(tables["probes"].to_pandas()), [sources["probes"]]),
        "information": (plotting.mutual_information(tables["information"].to_pandas()), [sources["information"]]),
        "samples": (plotting.sample_grid(images, requested), [sources["trajectories"]]),
        "loss": (plotting.training_loss(tables["loss"].to_pandas()), [sources["loss"]]),
        # The stored (memory-mapped) images: only the drawn ones are read.
        "dataset_contact_sheet": (plotting.contact_sheet(dataset.images, f"{experiment}: {len(dataset.images)} images"),
                                  dataset_files),
        "dataset_traversals": (plotting.traversals(dataset.images, base.traversal_rows(dataset)), dataset_files),
    }
    folder = paths.figures_dir(experiment)
    for name in FIGURE_NAMES:
        figure, inputs = drawn[name]
        save_png(figure, folder / f"{name}.png", provenance("figures", experiment, {}, inputs))
    log.info("wrote %s", ", ".join(f"{folder}/{n}.png" for n in FIGURE_NAMES))


if __name__ == "__main__":
    run_step("figures", figures_step)
