"""Pipeline step: train the conditional score network of one experiment."""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa
import torch

from . import checkpoints, paths
from .artifacts import provenance, write_parquet
from .cli import InputError, run_step
from .datasets import base
from .datasets.base import model_range
from .sde import make_sde
from .train import TrainConfig, train

log = logging.getLogger("train_score_model")


def train_step(experiment: str, params: dict, all_params: dict) -> None:
    dataset_dir = paths.dataset_dir(experiment)
    try:
        dataset = base.load(dataset_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from None
    architecture = checkpoints.architecture_from_params(params["model"], dataset.factor_table,
                                                           dataset.images.shape[1:])
    torch.manual_seed(params["train"]["seed"])
    model = checkpoints.build_model(architecture)
    model.check_taps(params["model"]["taps"])
    log.info("model: %d parameters", sum(p.numel() for p in model.parameters()))

    rows = dataset.train_rows()
    history = train(model, make_sde(params["sde"]), model_range(dataset.images[rows]),
                    dataset.condition_values()[rows], TrainConfig(**params["train"]), checkpoints.select_device())

    section = {key: params[key] for key in ("sde", "model", "train")}
    inputs = [dataset_dir / base.IMAGES_FILE, dataset_dir / base.FACTORS_FILE]
    meta = provenance("train_score_model", experiment, section, inputs)
    checkpoints.save(model, architecture, paths.weights(experiment), meta)
    write_parquet(pa.Table.from_pandas(pd.DataFrame(history), preserve_index=False), paths.loss_table(experiment), meta)
    log.info("final loss (mean of last 50 steps): %.4f", pd.DataFrame(history)["loss"].tail(50).mean())


if __name__ == "__main__":
    run_step("train_score_model", train_step)
