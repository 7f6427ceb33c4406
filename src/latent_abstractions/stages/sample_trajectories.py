"""Pipeline step: sample trajectories for a grid of requested factor combinations and
record, at chosen steps, states, network outputs, denoised estimates and activations
into the trajectory store (layout: store_layout.py), batch by batch and resumably."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import torch

from ..core.progress import Progress
from ..diffusion import checkpoints
from ..diffusion.counter_noise import CounterNoise
from ..diffusion.nets.unet import ScoreUNet
from ..diffusion.samplers import SAMPLERS
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..sampling.recording import (
    STREAM_SAMPLE,
    TrajectoryRecorder,
    factor_grid,
    factor_input,
    keep_mask,
    stream_seed,
    tap_shapes,
)
from ..store.store_layout import MAP_SIZE, StoreLayout, factor_column
from .sampling_setup import Sampling, network_block, prepare_sampling, step_columns

log = logging.getLogger("sample_trajectories")


def requested_positions(
    grid: dict[str, np.ndarray], stride: int, per_position: int, max_conditions: int, seed: int
) -> dict[str, np.ndarray]:
    """Every ``stride``-th entry of each factor's grid, crossed; at most ``max_conditions``
    of those combinations (a seeded draw when there are more); each repeated ``per_position``
    times. No factors: one empty combination (``per_position`` unconditional trajectories)."""
    names = list(grid)
    if not names:
        return {}
    mesh = np.meshgrid(*[grid[n][::stride] for n in names], indexing="ij")
    combinations = np.stack([m.ravel() for m in mesh], axis=1)
    if len(combinations) > max_conditions:
        chosen = np.random.default_rng(seed).choice(len(combinations), max_conditions, replace=False)
        combinations = combinations[np.sort(chosen)]
    return {name: np.repeat(combinations[:, k], per_position) for k, name in enumerate(names)}


@dataclasses.dataclass(frozen=True)
class Requests:
    """The trajectories to sample: the factors they are conditioned on, each one's
    requested values of them, and the network's input."""

    condition: list[str]
    requested: dict[str, np.ndarray]  # factor name -> (count,) value (categorical: value index)
    values: torch.Tensor  # (count, n_factors) the network's factor input
    keep: torch.Tensor  # (count, n_factors) bool: the factors fed in
    count: int


def request_trajectories(setup: Sampling, condition: list[str]) -> Requests:
    """The lattice of the ``condition`` factors' values (see :func:`requested_positions`)."""
    sample = setup.settings
    grid = {f.name: factor_grid(f) for f in setup.factors if f.name in condition}
    requested = requested_positions(
        grid, sample["position_stride"], sample["per_position"], sample["max_conditions"], sample["seed"]
    )
    count = len(next(iter(requested.values()))) if requested else sample["per_position"]
    values = torch.as_tensor(factor_input(setup.factors, requested, count))
    return Requests(condition, requested, values, keep_mask(setup.factors, condition, count), count)


def trajectory_layout(
    setup: Sampling, requests: Requests, steps: list[int], taps: list[str], full_maps: list[str]
) -> StoreLayout:
    """Every trajectory at every recorded step, with the columns of ``taps`` and ``full_maps``."""
    passes = (["cond"] if requests.condition else []) + ["uncond", "random"]
    recorded = list(dict.fromkeys(taps + full_maps))
    return setup.layout(
        "trajectories",
        factor_names=requests.condition,
        condition=requests.condition,
        rows={step: requests.count for step in steps},
        taps=taps,
        full_maps=full_maps,
        passes=passes,
        map_size=MAP_SIZE,
        tap_shapes=tap_shapes(setup.model, setup.image_shape, len(setup.factors), recorded, setup.device),
        trajectories=requests.count,
    )


def record_batch(
    setup: Sampling, layout: StoreLayout, requests: Requests, control: ScoreUNet, ids: np.ndarray
) -> dict[int, dict[str, np.ndarray]]:
    """Sample trajectories ``ids``, each from its own noise stream: the recorder's
    columns at each recorded step."""
    sample = setup.settings
    noise = CounterNoise([stream_seed(sample["seed"], STREAM_SAMPLE, j) for j in ids], setup.device)
    prior = setup.sde.prior_std() * noise((len(ids), *setup.image_shape))
    recorder = TrajectoryRecorder(
        setup.model,
        setup.sde,
        requests.values[ids].to(setup.device),
        layout.recorded_steps,
        layout.extra["taps"],
        control,
        keep=requests.keep[ids],
        guidance=sample["guidance"],
        full_maps=layout.extra["full_maps"],
        block=network_block(sample),
        one_shape=sample["compile"],  # a compiled network compiles once: one input shape, every tap read
    )
    SAMPLERS[sample["sampler"]](recorder, setup.sde, prior, setup.times, noise=noise)
    return recorder.records


def trajectory_rows(
    layout: StoreLayout, requests: Requests, step: int, ids: np.ndarray, records: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The rows of trajectories ``ids`` at a recorded step: the recorder's ``records``
    with the keys and the requested factors."""
    return {
        "trajectory": ids.astype(np.int32),
        **step_columns(layout, step, len(ids)),
        **{factor_column("trajectories", name): requests.requested[name][ids] for name in requests.condition},
        **records,
    }


def sample_step(experiment: str, params: dict) -> None:
    sample = params["sample"]
    taps, full_maps = list(params["model"]["taps"]), list(sample["full_maps"])
    setup = prepare_sampling(experiment, params, "sample", taps + full_maps)
    condition = setup.condition()
    steps = sorted(set(setup.recorded_steps("record")) | {sample["steps"]})  # t_end too: the final images
    requests = request_trajectories(setup, condition)
    torch.manual_seed(sample["seed"])
    # A random network of the same architecture: the probes' control.
    control = checkpoints.build_model(setup.architecture).to(setup.device).eval()
    layout = trajectory_layout(setup, requests, steps, taps, full_maps)
    writer = setup.writer("sample_trajectories", ExperimentPaths(experiment).trajectories, layout)
    count, batch_size = requests.count, sample["batch_size"]
    batches, done = math.ceil(count / batch_size), writer.start()
    with Progress(batches, f"sample {experiment}", "batch", initial=done) as progress:
        for batch in range(done, batches):
            ids = np.arange(batch * batch_size, min(count, (batch + 1) * batch_size))
            records = record_batch(setup, layout, requests, control, ids)
            parts = {step: (batch, trajectory_rows(layout, requests, step, ids, records[step])) for step in steps}
            writer.write_batch(batch, parts)
            del records, parts
            progress.update(1)
    writer.finish()
    log.info(
        "%d trajectories (%s), %d recorded steps, taps %s",
        count,
        f"conditioned on {', '.join(condition)}" if condition else "unconditional",
        len(steps),
        ", ".join(taps),
    )


if __name__ == "__main__":
    run_step("sample_trajectories", sample_step)
