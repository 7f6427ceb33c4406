"""Pipeline step: sample reverse-SDE trajectories for a grid of requested positions and
store states, denoised estimates and pooled activations at K recorded steps."""

from __future__ import annotations

import logging

import numpy as np
import torch

from .. import checkpoints, paths, trajectories
from ..artifacts import provenance
from ..cli import InputError, run_step
from ..recording import TrajectoryRecorder
from ..samplers import SAMPLERS
from ..sde import make_sde, time_grid

log = logging.getLogger("sample_trajectories")


def condition_grid(factors: list[dict]) -> dict[str, np.ndarray]:
    """What the network is conditioned with, per factor: the values of a continuous
    factor, the value indices of a categorical one."""
    return {f["name"]: np.asarray(f["values"], dtype=np.float64) if f["kind"] == "continuous"
            else np.arange(len(f["values"]), dtype=np.float64) for f in factors}


def requested_positions(grid: dict[str, np.ndarray], stride: int, per_position: int,
                        max_conditions: int, seed: int) -> dict[str, np.ndarray]:
    """Every ``stride``-th entry of each factor's grid, crossed; at most ``max_conditions``
    of those combinations (a seeded draw when there are more); each repeated ``per_position`` times."""
    names = list(grid)
    mesh = np.meshgrid(*[grid[n][::stride] for n in names], indexing="ij")
    combinations = np.stack([m.ravel() for m in mesh], axis=1)
    if len(combinations) > max_conditions:
        chosen = np.random.default_rng(seed).choice(len(combinations), max_conditions, replace=False)
        combinations = combinations[np.sort(chosen)]
    return {name: np.repeat(combinations[:, k], per_position) for k, name in enumerate(names)}


def record_steps(steps: int, count: int) -> list[int]:
    """``count`` distinct steps spread evenly over 0..steps (both ends included)."""
    return sorted(set(np.linspace(0, steps, count).round().astype(int).tolist()))


def sample_step(experiment: str, params: dict) -> None:
    sample = params["sample"]
    weights = paths.weights(experiment)
    taps = params["model"]["taps"]
    try:
        model, metadata = checkpoints.load_for_params(weights, params["model"])
        model.check_taps(taps)
    except ValueError as exc:  # CheckpointError included
        raise InputError(str(exc)) from None
    architecture = metadata["architecture"]
    device = checkpoints.select_device()
    model.to(device)
    sde = make_sde(params["sde"])

    requested = requested_positions(condition_grid(architecture["factors"]), sample["position_stride"],
                                    sample["per_position"], sample["max_conditions"], sample["seed"])
    values = torch.tensor(np.stack(list(requested.values()), axis=1), dtype=torch.float32, device=device)
    image_shape = (architecture["image_channels"], *architecture["image_size"])
    steps = record_steps(sample["steps"], sample["record_times"])
    torch.manual_seed(sample["seed"])
    control = checkpoints.build_model(architecture).to(device).eval()  # a random network: the probes' control
    recorder = TrajectoryRecorder(model, sde, values, steps, taps, control=control)
    generator = torch.Generator().manual_seed(sample["seed"])
    prior = sde.prior_sample((len(values),) + image_shape, generator).to(device)
    SAMPLERS[sample["sampler"]](recorder, sde, prior, time_grid(sde.T, sample["t_end"], sample["steps"]),
                                generator=generator)

    section = {key: params[key] for key in ("sde", "model", "sample")}
    meta = provenance("sample_trajectories", experiment, section, [weights])
    trajectories.write(recorder.table(requested), paths.trajectories(experiment), image_shape, taps,
                       architecture["factors"], meta)
    log.info("%d trajectories, %d recorded steps, taps %s", len(values), len(steps), ", ".join(taps))


if __name__ == "__main__":
    run_step("sample_trajectories", sample_step)
