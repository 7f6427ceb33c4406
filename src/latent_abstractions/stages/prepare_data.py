"""Pipeline step: make the experiment's dataset under data/<experiment>/dataset/, as its
registered kind makes it (datasets/registry.py): Gaussian bumps, procedural Shapes3D-like
scenes, an import of the real Shapes3D file, or a kind of the user's."""

from __future__ import annotations

import logging
from pathlib import Path

from ..core.artifacts import provenance
from ..datasets import base
from ..datasets.registry import kind_of
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths

log = logging.getLogger("prepare_data")


def prepare(experiment: str, params: dict) -> None:
    spec = params["dataset"]
    kind = kind_of(spec)
    folder = ExperimentPaths(experiment).dataset_dir
    external = [spec[kind.external_file]] if kind.external_file else []
    meta = provenance("prepare_data", experiment, spec, inputs=[f for f in external if Path(f).is_file()])
    kind.make(spec, folder, meta)
    dataset = base.load(folder, check_content=False)  # just written: no second pass over the images
    log.info(
        "%d %s images of shape %s (%d for training), factors %s",
        len(dataset.images),
        kind.name,
        dataset.images.shape[1:],
        len(dataset.train_rows()),
        {f.name: f.cardinality for f in dataset.factor_table},
    )


if __name__ == "__main__":
    run_step("prepare_data", prepare)
