"""Pipeline step: sample reverse-SDE trajectories for a grid of requested positions and
store states, denoised estimates and pooled activations at K recorded steps."""

from __future__ import annotations

import logging

import numpy as np
import torch

from . import checkpoints, paths, trajectories
from .artifacts import provenance
from .cli import InputError, run_step
from .samplers import reverse_sde_euler_maruyama
from .sde import make_sde, time_grid

log = logging.getLogger("sample_trajectories")


def requested_positions(factor_values: dict[str, tuple[float, ...]], stride: int, per_position: int) -> dict[str, np.ndarray]:
    """Every ``stride``-th lattice value of each factor, crossed, each repeated ``per_position`` times."""
    names = list(factor_values)
    grids = np.meshgrid(*[np.asarray(factor_values[n])[::stride] for n in names], indexing="ij")
    return {name: np.repeat(grid.ravel(), per_position) for name, grid in zip(names, grids)}


def record_steps(steps: int, count: int) -> list[int]:
    """``count`` distinct steps spread evenly over 0..steps (both ends included)."""
    return sorted(set(np.linspace(0, steps, count).round().astype(int).tolist()))


def sample_step(experiment: str, params: dict, all_params: dict) -> None:
    sample = params["sample"]
    weights = paths.weights(experiment)
    try:
        model, metadata = checkpoints.load(weights)
    except checkpoints.CheckpointError as exc:
        raise InputError(str(exc)) from None
    taps = params["model"]["taps"]
    try:
        model.check_taps(taps)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    architecture = metadata["architecture"]
    device = checkpoints.select_device()
    model.to(device)
    sde = make_sde(params["sde"])

    factor_values = {f["name"]: tuple(f["values"]) for f in architecture["factors"]}
    requested = requested_positions(factor_values, sample["position_stride"], sample["per_position"])
    values = torch.tensor(np.stack(list(requested.values()), axis=1), dtype=torch.float32, device=device)
    image_shape = (architecture["image_channels"], *architecture["image_size"])
    steps = record_steps(sample["steps"], sample["record_times"])
    recorder = trajectories.TrajectoryRecorder(model, sde, values, steps, taps)
    generator = torch.Generator().manual_seed(sample["seed"])
    prior = sde.prior_sample((len(values),) + image_shape, generator).to(device)
    reverse_sde_euler_maruyama(recorder, sde, prior, time_grid(sde.T, sample["t_end"], sample["steps"]),
                               generator=generator)

    section = {key: params[key] for key in ("sde", "model", "sample")}
    meta = provenance("sample_trajectories", experiment, section, [weights])
    trajectories.write(recorder.table(requested), paths.trajectories(experiment), image_shape, taps, meta)
    log.info("%d trajectories, %d recorded steps, taps %s", len(values), len(steps), ", ".join(taps))


if __name__ == "__main__":
    run_step("sample_trajectories", sample_step)
