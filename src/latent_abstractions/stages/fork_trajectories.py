"""Pipeline step (study 1): M parent trajectories; from each, at every fork time tau, K
branches with fresh noise down to t_end; the branches' and parents' final images go to
the fork store (layout: store_layout.py), batch by batch and resumably."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from ..core.errors import InputError
from ..core.progress import Progress
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..sampling.forking import batches, parent_conditions, run
from ..sampling.recording import (
    STREAM_FORK_BRANCH,
    STREAM_FORK_PARENT,
    TrajectoryRecorder,
    factor_input,
    keep_mask,
    stream_seed,
)
from ..store.store import StoreWriter
from ..store.store_layout import PARENT_BRANCH, StoreLayout, factor_column
from .sampling_setup import Sampling, network_block, prepare_sampling, step_columns

log = logging.getLogger("fork_trajectories")


@dataclasses.dataclass(frozen=True)
class ForkRun:
    """One fork run: its setup, the fork store's layout and writer, and the parents'
    requested factors and network input."""

    setup: Sampling
    layout: StoreLayout
    writer: StoreWriter
    done: int  # batches an interrupted run of the same params finished
    requested: dict[str, np.ndarray]  # factor name -> (parents,) value (categorical: value index)
    values: torch.Tensor  # (parents, n_factors) the network's factor input

    def sample(
        self, times: torch.Tensor, ids: np.ndarray, keep: torch.Tensor, seeds: list[int], **start
    ) -> tuple[torch.Tensor, TrajectoryRecorder]:
        """Parents ``ids`` (fed the factors ``keep`` marks) sampled down ``times``, each
        row from its stream ``seeds``; ``start``: forking.run's start and recording."""
        setup, settings = self.setup, self.setup.settings
        return run(
            setup.model,
            setup.sde,
            settings["sampler"],
            times,
            self.values[ids].to(setup.device),
            keep[ids],
            seeds,
            guidance=settings["guidance"],
            block=network_block(settings),
            **start,
        )

    def write(self, batch: int, part: int, step: int, ids: np.ndarray, branch, images: torch.Tensor) -> None:
        """Batch ``batch``: the final ``images`` of parents ``ids`` (``branch`` per row)
        continued from ``step``, as part ``part`` of that step."""
        rows = {
            "trajectory": ids.astype(np.int32),
            **step_columns(self.layout, step, len(ids)),
            "branch": np.asarray(branch, np.int32),
            **{factor_column("forks", name): self.requested[name][ids] for name in self.layout.factor_names},
            "image": images.flatten(1).float().cpu().numpy(),
        }
        self.writer.write_batch(batch, {step: (part, rows)})


def branch_condition(setup: Sampling, parent_condition: list[str]) -> list[str]:
    """The factors the branches are fed: some of those the parents are."""
    condition = setup.condition("condition")
    outside = [name for name in condition if name not in parent_condition]
    if outside:
        raise InputError(
            f"{setup.where}.condition lists {', '.join(outside)}, which the parents are not conditioned on "
            f"(parent_condition: {', '.join(parent_condition) or 'none'})"
        )
    return condition


def fork_layout(
    setup: Sampling, fork_steps: list[int], parent_condition: list[str], condition: list[str]
) -> StoreLayout:
    """Every branch at each fork step; the parents' own images at the last step."""
    fork = setup.settings
    parents, branches = fork["parents"], fork["branches"]
    return setup.layout(
        "forks",
        factor_names=parent_condition,
        condition=condition,
        rows={**{step: parents * branches for step in fork_steps}, fork["steps"]: parents},
        parent_condition=parent_condition,
        parents=parents,
        branches=branches,
    )


def sample_parents(
    fork: ForkRun, keep: torch.Tensor, fork_steps: list[int], progress: Progress
) -> dict[int, np.ndarray]:
    """Every parent, batch by batch (they are the branches' start, so they run on a
    resumed run too); their own rows are written once. Returns their states,
    (parents, C*H*W), at each fork step."""
    setup, settings = fork.setup, fork.setup.settings
    parents, seed = settings["parents"], settings["seed"]
    states = {step: np.empty((parents, int(np.prod(setup.image_shape))), np.float32) for step in fork_steps}
    for batch, ids in enumerate(batches(parents, settings["batch_size"])):
        seeds = [stream_seed(seed, STREAM_FORK_PARENT, j) for j in ids]
        final, recorder = fork.sample(
            setup.times, ids, keep, seeds, image_shape=setup.image_shape, record_steps=fork_steps
        )
        for step in fork_steps:
            states[step][ids] = recorder.records[step]["state"]
        if batch >= fork.done:
            fork.write(batch, batch, settings["steps"], ids, np.full(len(ids), PARENT_BRANCH), final)
        progress.update(1)
    return states


def sample_branches(
    fork: ForkRun, keep: torch.Tensor, step: int, states: np.ndarray, first_batch: int, progress: Progress
) -> None:
    """Every parent's branches from its state ``states`` at fork step ``step``, the
    store's batches from ``first_batch`` on."""
    setup, settings = fork.setup, fork.setup.settings
    branches = settings["branches"]
    for part, units in enumerate(batches(settings["parents"] * branches, settings["batch_size"])):
        if first_batch + part < fork.done:
            continue
        ids, branch = units // branches, units % branches
        seeds = [stream_seed(settings["seed"], STREAM_FORK_BRANCH, step, j, b) for j, b in zip(ids, branch)]
        x = torch.from_numpy(states[ids]).reshape(len(ids), *setup.image_shape)
        final, _ = fork.sample(setup.times[step:], ids, keep, seeds, x=x)
        fork.write(first_batch + part, part, step, ids, branch, final)
        progress.update(1)


def sample_forks(fork: ForkRun, fork_steps: list[int], parent_condition: list[str], condition: list[str]) -> None:
    """The parents, then the branches at each fork step, counted batch by batch: every
    batch of the store is sampled (the parents' also on a resumed run) but the branch
    batches an interrupted run finished."""
    setup, layout, settings = fork.setup, fork.layout, fork.setup.settings
    parents, parent_batches = settings["parents"], layout.parts[settings["steps"]]
    skipped = max(0, fork.done - parent_batches)
    with Progress(sum(layout.parts.values()), f"fork {setup.experiment}", "batch", initial=skipped) as progress:
        states = sample_parents(fork, keep_mask(setup.factors, parent_condition, parents), fork_steps, progress)
        log.info("%d parents sampled; forks at t = %s", parents, ", ".join(f"{t:.3g}" for t in layout.recorded_t[:-1]))
        branch_keep, first_batch = keep_mask(setup.factors, condition, parents), parent_batches
        for step in fork_steps:
            sample_branches(fork, branch_keep, step, states[step], first_batch, progress)
            first_batch += layout.parts[step]
            log.info("fork step %d: %d branches written", step, parents * settings["branches"])


def fork_step(experiment: str, params: dict) -> None:
    setup = prepare_sampling(experiment, params, "fork")
    settings = setup.settings
    fork_steps = setup.steps_before_end("fork time")
    parent_condition = setup.condition("parent_condition")
    condition = branch_condition(setup, parent_condition)
    parents = settings["parents"]
    requested = parent_conditions(setup.factors, parent_condition, parents, settings["seed"])
    layout = fork_layout(setup, fork_steps, parent_condition, condition)
    writer = setup.writer("fork_trajectories", ExperimentPaths(experiment).forks, layout)
    values = torch.as_tensor(factor_input(setup.factors, requested, parents))
    fork = ForkRun(setup, layout, writer, writer.start(), requested, values)
    sample_forks(fork, fork_steps, parent_condition, condition)
    writer.finish()
    log.info(
        "%d parents x %d fork times x %d branches (%s)",
        parents,
        len(fork_steps),
        settings["branches"],
        f"branches conditioned on {', '.join(condition)}" if condition else "unconditional branches",
    )


if __name__ == "__main__":
    run_step("fork_trajectories", fork_step)
