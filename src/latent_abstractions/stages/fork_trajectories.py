"""Pipeline step (study 1): M parent trajectories; from each, at every fork time tau, K
branches with fresh noise down to t_end; the branches' and parents' final images go to
the fork store (layout: trajectories.py), batch by batch and resumably."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from .. import paths
from ..artifacts import file_sha256, provenance
from ..cli import run_step
from ..devices import select_device
from ..errors import InputError
from ..forking import batches, parent_conditions, run, steps_before_end
from ..recording import (
    STREAM_FORK_BRANCH,
    STREAM_FORK_PARENT,
    factor_input,
    keep_mask,
    load_network,
    resolve_condition,
    stream_seed,
    time_columns,
)
from ..sde import make_sde
from ..store import StoreWriter
from ..trajectories import PARENT_BRANCH, factor_column

log = logging.getLogger("fork_trajectories")


def fork_step(experiment: str, params: dict) -> None:
    fork = params["fork"]
    where = f"params.yaml: experiments.{experiment}.fork"
    model, architecture, weights = load_network(experiment, params)
    factors = architecture["factors"]
    sde = make_sde(params["sde"])
    last = fork["steps"]
    try:
        times, fork_steps = steps_before_end(fork, sde, where, "fork time")
        parent_condition = resolve_condition(fork["parent_condition"], factors, f"{where}.parent_condition")
        condition = resolve_condition(fork["condition"], factors, f"{where}.condition")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    outside = [name for name in condition if name not in parent_condition]
    if outside:
        raise InputError(
            f"{where}.condition lists {', '.join(outside)}, which the parents are not conditioned on "
            f"(parent_condition: {', '.join(parent_condition) or 'none'})"
        )
    device = select_device()
    model.to(device)
    image_shape = (architecture["image_channels"], *architecture["image_size"])
    parents, branches, batch_size, seed = fork["parents"], fork["branches"], fork["batch_size"], fork["seed"]
    requested = parent_conditions(factors, parent_condition, parents, seed)
    values = torch.as_tensor(factor_input(factors, requested, parents))
    parent_keep, branch_keep = keep_mask(factors, parent_condition, parents), keep_mask(factors, condition, parents)
    steps = fork_steps + [last]
    t_values, log_snrs = time_columns(sde, times, steps)
    per_fork = parents * branches
    layout = {
        "kind": "forks",
        "image_shape": list(image_shape),
        "factors": factors,
        "factor_names": parent_condition,
        "parent_condition": parent_condition,
        "condition": condition,
        "guidance": float(fork["guidance"]),
        "sampler": fork["sampler"],
        "steps": last,
        "spacing": fork["spacing"],
        "t_end": fork["t_end"],
        "seed": seed,
        "recorded_steps": steps,
        "recorded_t": t_values,
        "recorded_log_snr": log_snrs,
        "parents": parents,
        "branches": branches,
        "batch_size": batch_size,
        "eval_block": fork["eval_block"],
        "rows": {**{str(s): per_fork for s in fork_steps}, str(last): parents},
        "parts": {
            **{str(s): math.ceil(per_fork / batch_size) for s in fork_steps},
            str(last): math.ceil(parents / batch_size),
        },
        "checkpoint_sha256": file_sha256(weights),
    }
    section = {key: params[key] for key in ("sde", "model", "fork")}
    writer = StoreWriter(
        paths.forks(experiment), layout, provenance("fork_trajectories", experiment, section, [weights])
    )
    done = writer.start()
    common = {"guidance": fork["guidance"], "block": fork["eval_block"]}

    def rows(ids, step, branch, images) -> dict:
        index = steps.index(step)
        n = len(ids)
        return {
            "trajectory": ids.astype(np.int32),
            "step": np.full(n, step, np.int32),
            "t": np.full(n, t_values[index], np.float32),
            "log_snr": np.full(n, log_snrs[index], np.float32),
            "branch": np.asarray(branch, np.int32),
            **{factor_column("forks", name): requested[name][ids] for name in parent_condition},
            "image": images.flatten(1).float().cpu().numpy(),
        }

    # The parents run every time (their states at the fork times are the branches' start);
    # their own rows are written once.
    states = {step: np.empty((parents, int(np.prod(image_shape))), np.float32) for step in fork_steps}
    batch = 0
    for part, ids in enumerate(batches(parents, batch_size)):
        final, recorder = run(
            model,
            sde,
            fork["sampler"],
            times,
            values[ids].to(device),
            parent_keep[ids],
            [stream_seed(seed, STREAM_FORK_PARENT, j) for j in ids],
            image_shape=image_shape,
            record_steps=fork_steps,
            **common,
        )
        for step in fork_steps:
            states[step][ids] = recorder.records[step]["state"]
        if batch >= done:
            writer.write_batch(batch, {last: (part, rows(ids, last, np.full(len(ids), PARENT_BRANCH), final))})
        batch += 1
    log.info("%d parents sampled; forks at t = %s", parents, ", ".join(f"{t:.3g}" for t in t_values[:-1]))
    for step in fork_steps:
        for part, units in enumerate(batches(per_fork, batch_size)):
            if batch >= done:
                ids, branch = units // branches, units % branches
                seeds = [stream_seed(seed, STREAM_FORK_BRANCH, step, j, b) for j, b in zip(ids, branch)]
                x = torch.from_numpy(states[step][ids]).reshape(len(ids), *image_shape)
                final, _ = run(
                    model,
                    sde,
                    fork["sampler"],
                    times[step:],
                    values[ids].to(device),
                    branch_keep[ids],
                    seeds,
                    x=x,
                    **common,
                )
                writer.write_batch(batch, {step: (part, rows(ids, step, branch, final))})
            batch += 1
        log.info("fork step %d: %d branches written", step, per_fork)
    writer.finish()
    log.info(
        "%d parents x %d fork times x %d branches (%s)",
        parents,
        len(fork_steps),
        branches,
        f"branches conditioned on {', '.join(condition)}" if condition else "unconditional branches",
    )


if __name__ == "__main__":
    run_step("fork_trajectories", fork_step)
