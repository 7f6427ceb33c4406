"""Pipeline step: I(factor; X_t) over t from the score network (the orthogonal and the
MMSE-difference forms of the score-difference integral, with standard errors), beside
the exact value from the finite data set, the Bayes-optimal accuracy and the model's
consistency, on the rows the model was trained on (and, separately labelled, on the
held-out rows), as a tidy Parquet table: one row per (distribution, quantity, factor, t)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from ..analysis import convergence, information
from ..analysis.ground_truth import FiniteMixture
from ..core.artifacts import provenance, write_json, write_parquet, write_series_csv
from ..core.devices import select_device
from ..datasets import base
from ..diffusion import checkpoints
from ..diffusion.sde import make_sde
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths

log = logging.getLogger("estimate_information")


MI_QUANTITIES = ("orthogonal", "mmse_difference", "exact")


def information_table(model, sde, dataset, rows, settings: dict, device, distribution: str) -> pd.DataFrame:
    """Every quantity of information.mutual_information over the data set's ``rows``, long form."""
    source = FiniteMixture(dataset.images, dataset.bins(), dataset.condition_values(), rows=rows)
    if device.type == "cuda":
        source = source.to(device)
    estimate = information.mutual_information(
        model,
        sde,
        source,
        t_end=settings["t_end"],
        points=settings["integration_points"],
        samples=settings["samples"],
        seed=settings["seed"],
        device=device,
        batch_size=settings["batch_rows"],
        consistency=settings["consistency"],
        precision=settings["precision"],
    )
    frame = pd.DataFrame(estimate.columns([f.name for f in dataset.factor_table]))
    frame.insert(0, "distribution", distribution)
    return frame


def agreement(frame: pd.DataFrame) -> dict:
    """Per learned form and factor, on the train rows: the mean absolute gap to the exact
    curve and the largest excess over H(factor) (convergence.py: the figure's and the
    findings' numbers)."""
    forms = [form for form in ("orthogonal", "mmse_difference") if (frame["quantity"] == form).any()]
    if not forms:  # no learned estimate (the network cannot give one)
        return {}
    gaps = convergence.information_gaps(frame, forms=tuple(forms))
    return {
        form: {
            row.factor: {
                "mean_abs_gap_nats": round(float(row.mean_gap), 4),
                "max_excess_over_entropy_nats": round(float(row.max_excess_over_entropy), 4),
            }
            for row in gaps[gaps["estimate"] == form].itertuples()
        }
        for form in forms
    }


def information_step(experiment: str, params: dict) -> None:
    files = ExperimentPaths(experiment)
    weights = files.weights
    model, metadata = checkpoints.load_for_params(weights, params, experiment)
    dataset = base.load(files.dataset_dir).restricted([f["name"] for f in metadata["architecture"]["factors"]])
    device = select_device()
    if device.type == "mps":  # the exact terms are float64, which MPS lacks
        log.info("the information estimate runs on the CPU (float64); MPS has no float64")
        device = torch.device("cpu")
    model.to(device)
    sde = make_sde(params["sde"])
    settings = params["information"]
    if settings["precision"] == "bf16" and device.type != "cuda":
        log.warning("information.precision: bf16 needs a CUDA device; %s estimates in fp32", device)
    # The model was trained on the train rows: its curves are compared with the exact
    # curves of that distribution. Held-out rows, where there are any, are a separate curve.
    unavailable = model.unavailable_estimates
    if unavailable:  # the exact curves still come, and every other stage runs
        log.warning("learned information unavailable: %s; writing the exact curves only", unavailable)
        model = None
    train = dataset.train_rows()
    held_out = np.setdiff1d(np.arange(len(dataset.factors)), train)
    frames = [information_table(model, sde, dataset, train, settings, device, "train")]
    fixed = [f.name for f, column in zip(dataset.factor_table, dataset.bins().T) if len(set(column[held_out])) < 2]
    if len(held_out) and not fixed:
        frames.append(information_table(model, sde, dataset, held_out, settings, device, "held_out"))
    elif len(held_out):
        log.info("no held-out curve: the held-out rows fix %s (I = 0 there)", ", ".join(fixed))
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, "experiment", experiment)
    inputs = [*files.dataset_files, weights]
    section = {key: params[key] for key in ("sde", "model", "information")}
    write_parquet(
        pa.Table.from_pandas(frame, preserve_index=False),
        files.information,
        provenance("estimate_information", experiment, section, inputs),
    )
    write_json(agreement(frame), files.information_metrics)
    curves = frame[(frame["distribution"] == "train") & frame["quantity"].isin(MI_QUANTITIES)]
    write_series_csv(curves, "t", ["factor", "quantity"], "mean", files.plot_data("information"))
    last = curves[curves["t"] == curves["t"].min()].pivot(index="factor", columns="quantity", values="mean")
    log.info("I(factor; X_t) at t=%.3g on the train rows, nats:\n%s", curves["t"].min(), last.round(3))


if __name__ == "__main__":
    run_step("estimate_information", information_step)
