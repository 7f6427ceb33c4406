"""Pipeline step: I(factor; X_t) over t by the score-difference estimator, beside the
exact value from the finite data set, as a tidy Parquet table."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from .. import checkpoints, information, paths
from ..artifacts import provenance, write_parquet, write_series_csv
from ..cli import InputError, run_step
from ..datasets import base
from ..pixels import model_range
from ..sde import make_sde

log = logging.getLogger("estimate_information")


def information_step(experiment: str, params: dict) -> None:
    dataset_dir, weights = paths.dataset_dir(experiment), paths.weights(experiment)
    try:
        model, metadata = checkpoints.load_for_params(weights, params["model"])
        dataset = base.load(dataset_dir).restricted([f["name"] for f in metadata["architecture"]["factors"]])
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from None
    device = checkpoints.select_device()
    model.to(device)
    sde = make_sde(params["sde"])
    names = [f.name for f in dataset.factor_table]
    settings = params["information"]
    result = information.estimate(
        model, sde, model_range(dataset.images), dataset.condition_values(), dataset.bins(),
        t_end=settings["t_end"], points=settings["integration_points"], samples=settings["samples"],
        seed=settings["seed"], device=device,
    )
    times = result["times"]
    log_snr = sde.log_snr(torch.as_tensor(times)).numpy()
    rows = []
    for estimator in ("score_difference", "exact"):
        for k, name in enumerate(names):
            rows.append(pd.DataFrame({
                "experiment": experiment, "factor": name, "estimator": estimator, "t": times,
                "log_snr": log_snr, "mi_nats": result[estimator][:, k], "factor_entropy_nats": result["entropy"][k],
            }))
    frame = pd.concat(rows, ignore_index=True)
    inputs = [dataset_dir / base.IMAGES_FILE, dataset_dir / base.FACTORS_FILE, weights]
    section = {key: params[key] for key in ("sde", "model", "information")}
    write_parquet(pa.Table.from_pandas(frame, preserve_index=False), paths.information(experiment),
                  provenance("estimate_information", experiment, section, inputs))
    write_series_csv(frame, "t", ["factor", "estimator"], "mi_nats", paths.plot_data(experiment, "information"))
    at_end = frame[np.isclose(frame["t"], times[-1])].pivot(index="factor", columns="estimator", values="mi_nats")
    log.info("I(factor; X_t) at t=%.3g, nats:\n%s", times[-1], at_end.round(3))


if __name__ == "__main__":
    run_step("estimate_information", information_step)
