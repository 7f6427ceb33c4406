"""Pipeline step: render the experiment's dataset under data/<experiment>/dataset/."""

from __future__ import annotations

import logging

from . import paths
from .artifacts import provenance
from .cli import run_step
from .datasets import base, bumps

log = logging.getLogger("prepare_data")


def prepare(experiment: str, params: dict, all_params: dict) -> None:
    spec = {key: value for key, value in params["dataset"].items() if key != "kind"}
    dataset = bumps.make(**spec)
    meta = provenance("prepare_data", experiment, params["dataset"], inputs=[])
    base.save(dataset, paths.dataset_dir(experiment), meta)
    log.info("%d images of shape %s, factors %s", len(dataset.images), dataset.images.shape[1:],
             {f.name: f.cardinality for f in dataset.factor_table})


if __name__ == "__main__":
    run_step("prepare_data", prepare)
