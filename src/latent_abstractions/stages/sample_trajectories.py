"""Pipeline step: sample trajectories for a grid of requested factor combinations and
record, at chosen steps, states, network outputs, denoised estimates and activations
into the trajectory store (layout: trajectories.py), batch by batch and resumably."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from .. import checkpoints, paths
from ..artifacts import file_sha256, provenance
from ..cli import run_step
from ..devices import select_device
from ..errors import InputError
from ..recording import (
    STREAM_SAMPLE,
    PerTrajectoryNoise,
    TrajectoryRecorder,
    condition_grid,
    factor_input,
    keep_mask,
    load_network,
    recorded_steps,
    resolve_condition,
    stream_seed,
    tap_shapes,
    time_columns,
)
from ..samplers import SAMPLERS
from ..sde import make_sde, time_grid
from ..store import StoreWriter
from ..trajectories import MAP_SIZE, factor_column

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


def sample_step(experiment: str, params: dict) -> None:
    sample = params["sample"]
    where = f"params.yaml: experiments.{experiment}.sample"
    taps, full_maps = list(params["model"]["taps"]), list(sample["full_maps"])
    model, architecture, weights = load_network(experiment, params, taps + full_maps)
    factors = architecture["factors"]
    sde = make_sde(params["sde"])
    times = time_grid(sde.T, sample["t_end"], sample["steps"], sde=sde, spacing=sample["spacing"])
    try:
        condition = resolve_condition(sample["condition"], factors, f"{where}.condition")
        steps = sorted(set(recorded_steps(sample["record"], times, sde, f"{where}.record")) | {sample["steps"]})
    except ValueError as exc:
        raise InputError(str(exc)) from None
    device = select_device()
    model.to(device)
    image_shape = (architecture["image_channels"], *architecture["image_size"])

    grid = condition_grid([f for f in factors if f["name"] in condition])
    requested = requested_positions(
        grid, sample["position_stride"], sample["per_position"], sample["max_conditions"], sample["seed"]
    )
    count = len(next(iter(requested.values()))) if requested else sample["per_position"]
    values = torch.as_tensor(factor_input(factors, requested, count))
    keep = keep_mask(factors, condition, count)
    batch_size = sample["batch_size"]
    batches = math.ceil(count / batch_size)
    torch.manual_seed(sample["seed"])
    control = checkpoints.build_model(architecture).to(device).eval()  # a random network: the probes' control
    t_values, log_snrs = time_columns(sde, times, steps)
    passes = (["cond"] if condition else []) + ["uncond", "random"]
    layout = {
        "kind": "trajectories",
        "image_shape": list(image_shape),
        "factors": factors,
        "factor_names": condition,
        "condition": condition,
        "guidance": float(sample["guidance"]),
        "sampler": sample["sampler"],
        "steps": sample["steps"],
        "spacing": sample["spacing"],
        "t_end": sample["t_end"],
        "seed": sample["seed"],
        "recorded_steps": steps,
        "recorded_t": t_values,
        "recorded_log_snr": log_snrs,
        "taps": taps,
        "full_maps": full_maps,
        "passes": passes,
        "map_size": MAP_SIZE,
        "tap_shapes": tap_shapes(model, image_shape, len(factors), list(dict.fromkeys(taps + full_maps)), device),
        "trajectories": count,
        "batch_size": batch_size,
        "eval_block": sample["eval_block"],
        "rows": {str(s): count for s in steps},
        "parts": {str(s): batches for s in steps},
        "checkpoint_sha256": file_sha256(weights),
    }
    section = {key: params[key] for key in ("sde", "model", "sample")}
    writer = StoreWriter(
        paths.trajectories(experiment), layout, provenance("sample_trajectories", experiment, section, [weights])
    )
    done = writer.start()
    sampler = SAMPLERS[sample["sampler"]]
    for batch in range(done, batches):
        ids = np.arange(batch * batch_size, min(count, (batch + 1) * batch_size))
        noise = PerTrajectoryNoise([stream_seed(sample["seed"], STREAM_SAMPLE, j) for j in ids], device)
        prior = sde.prior_std() * noise((len(ids), *image_shape))
        recorder = TrajectoryRecorder(
            model,
            sde,
            values[ids].to(device),
            steps,
            taps,
            control,
            keep=keep[ids],
            guidance=sample["guidance"],
            full_maps=full_maps,
            block=sample["eval_block"],
        )
        sampler(recorder, sde, prior, times, noise=noise)
        parts = {}
        for step, t_value, log_snr in zip(steps, t_values, log_snrs):
            columns = {
                "trajectory": ids.astype(np.int32),
                "step": np.full(len(ids), step, np.int32),
                "t": np.full(len(ids), t_value, np.float32),
                "log_snr": np.full(len(ids), log_snr, np.float32),
                **{factor_column("trajectories", name): requested[name][ids] for name in condition},
                **recorder.records[step],
            }
            parts[step] = (batch, columns)
        writer.write_batch(batch, parts)
        del recorder, parts
        log.info("batch %d/%d: trajectories %d..%d", batch + 1, batches, ids[0], ids[-1])
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
