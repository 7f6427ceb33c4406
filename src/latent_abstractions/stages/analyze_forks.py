"""Pipeline step: label the final images of the forked continuations and of the
forward-backward regenerations with the clean-image classifier, and turn the labels into
fork entropy, fork agreement and forward-backward agreement per factor and time
(fork_analysis.py). The labeller's own test accuracy (classifier/metrics.json)
bounds what these curves can show."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from ..analysis import fork_analysis
from ..analysis.entropy import plug_in_entropy
from ..classifier import classifier_checkpoint, classifier_prediction
from ..core.artifacts import provenance, write_parquet
from ..core.progress import Progress
from ..datasets import base
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..store import trajectories

log = logging.getLogger("analyze_forks")


def labels_of(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """The most probable value index per factor of each image (..., C, H, W)."""
    lead = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:])
    return {name: p.argmax(axis=1).reshape(lead) for name, p in classifier_prediction.predict(model, flat, 0.0).items()}


def analyze_step(experiment: str, params: dict) -> None:
    files = ExperimentPaths(experiment)
    dataset = base.load(files.dataset_dir).restricted(params["model"]["condition_on"])
    model, _ = classifier_checkpoint.load(files.classifier_weights, dataset=dataset)
    forks = trajectories.open_store(files.forks, "forks").fork_images()
    regenerations = trajectories.open_store(files.forward_backward, "forward_backward").regenerations()
    names = [f.name for f in dataset.factor_table]
    bins = dataset.bins()
    train = dataset.train_rows()
    cardinalities = {f.name: f.cardinality for f in dataset.factor_table}
    entropies = {name: plug_in_entropy(bins[train, k], cardinalities[name]) for k, name in enumerate(names)}
    with Progress(3, f"label forks {experiment}", "image set") as progress:
        labelled = []
        for images in (forks.images, forks.parent_images, regenerations.images):
            labelled.append(labels_of(model, images))
            progress.update(1)
    fork_rows = fork_analysis.fork_table(
        labelled[0],
        labelled[1],
        cardinalities,
        entropies,
        forks.t,
        forks.log_snr,
    )
    source_labels = {name: bins[regenerations.sources, k] for k, name in enumerate(names)}
    backward_rows = fork_analysis.forward_backward_table(
        labelled[2],
        source_labels,
        regenerations.split,
        regenerations.t,
        regenerations.log_snr,
    )
    table = pd.concat([fork_rows.assign(split="all"), backward_rows], ignore_index=True)
    table.insert(0, "experiment", experiment)
    inputs = [files.forks, files.forward_backward, files.classifier_weights]
    write_parquet(
        pa.Table.from_pandas(table, preserve_index=False),
        files.fork_analysis,
        provenance("analyze_forks", experiment, {}, inputs),
    )
    log.info(
        "fork agreement at the last fork time: %s",
        fork_rows[(fork_rows["quantity"] == "fork_agreement") & (fork_rows["t"] == fork_rows["t"].min())]
        .set_index("factor")["mean"]
        .round(3)
        .to_dict(),
    )


if __name__ == "__main__":
    run_step("analyze_forks", analyze_step)
