"""Pipeline step (Sclocchi et al. 2024): training and held-out images noised forward to
several times t and regenerated down to t_end (unconditionally by default); the final
images, with their source's factors and split, go to the forward-backward store (layout:
store_layout.py), batch by batch and resumably."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from ..core.errors import InputError
from ..core.pixels import model_range
from ..core.progress import Progress
from ..datasets import base
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..sampling.forking import batches, run, source_rows
from ..sampling.recording import STREAM_FORWARD_BACKWARD, keep_mask, stream_seed
from ..store.store import StoreWriter
from ..store.store_layout import StoreLayout, factor_column
from .sampling_setup import Sampling, network_block, prepare_sampling, step_columns

log = logging.getLogger("forward_backward")


@dataclasses.dataclass(frozen=True)
class Sources:
    """The data images to noise and regenerate."""

    images: np.ndarray  # every image of the data set, (rows, C, H, W)
    split: np.ndarray  # every row's split: "train" or "test"
    rows: np.ndarray  # (N,) the rows chosen
    conditions: np.ndarray  # (N, n_factors) their network input


def load_dataset(experiment: str, setup: Sampling) -> base.Dataset:
    """The experiment's data set, with the network's factors; its images must be the network's."""
    dataset = base.load(ExperimentPaths(experiment).dataset_dir).restricted([f.name for f in setup.factors])
    return dataset


def choose_sources(experiment: str, setup: Sampling, dataset: base.Dataset) -> Sources:
    """Up to ``images`` rows of each split (a seeded draw); a data set without a split is all train."""
    files = ExperimentPaths(experiment)
    image_shape = tuple(dataset.images.shape[1:])
    if image_shape != setup.image_shape:
        raise InputError(f"{files.dataset_dir}: images {image_shape} are not the model's")
    split = (
        dataset.factors["split"].to_numpy().astype(str)
        if "split" in dataset.factors
        else np.full(len(dataset.factors), "train")
    )
    rows = source_rows(split, setup.settings["images"], setup.settings["seed"])
    if not len(rows):
        raise InputError(f"{files.dataset_dir}: no images to noise")
    return Sources(dataset.images, split, rows, dataset.condition_values()[rows])


def regeneration_layout(setup: Sampling, sources: Sources, starts: list[int], condition: list[str]) -> StoreLayout:
    """Every repeat of every source at each start step."""
    settings = setup.settings
    return setup.layout(
        "forward_backward",
        factor_names=[f.name for f in setup.factors],
        condition=condition,
        rows={step: len(sources.rows) * settings["repeats"] for step in starts},
        images_per_split=settings["images"],
        sources=len(sources.rows),
        repeats=settings["repeats"],
    )


def regenerate(
    setup: Sampling, layout: StoreLayout, sources: Sources, keep: torch.Tensor, step: int, chosen: np.ndarray
) -> dict[str, np.ndarray]:
    """Units ``chosen`` (source, repeat) noised to ``step`` and regenerated: their rows."""
    repeats = setup.settings["repeats"]
    which, repeat = chosen // repeats, chosen % repeats
    rows = sources.rows[which]
    images = torch.from_numpy(model_range(np.asarray(sources.images[rows])))
    values = torch.as_tensor(sources.conditions[which], dtype=torch.float32)
    seeds = [stream_seed(setup.settings["seed"], STREAM_FORWARD_BACKWARD, step, r, k) for r, k in zip(rows, repeat)]
    settings = setup.settings
    final, _ = run(
        setup.model,
        setup.sde,
        settings["sampler"],
        setup.times[step:],
        values.to(setup.device),
        keep[chosen],
        seeds,
        images=images,
        guidance=settings["guidance"],
        block=network_block(settings),
    )
    return {
        "source": rows.astype(np.int32),
        **step_columns(layout, step, len(chosen)),
        "repeat": repeat.astype(np.int32),
        "split": sources.split[rows],
        **{
            factor_column("forward_backward", name): sources.conditions[which, k]
            for k, name in enumerate(layout.factor_names)
        },
        "image": final.flatten(1).float().cpu().numpy(),
    }


def regenerate_all(
    setup: Sampling, layout: StoreLayout, sources: Sources, writer: StoreWriter, condition: list[str]
) -> None:
    """Every (source, repeat) noised to each start step and regenerated, the store's
    batches time by time, from the first one an interrupted run left."""
    done, starts = writer.start(), list(layout.recorded_steps)
    units = layout.rows[starts[0]]
    keep = keep_mask(setup.factors, condition, units)
    batch = 0
    with Progress(
        sum(layout.parts.values()), f"forward-backward {setup.experiment}", "batch", initial=done
    ) as progress:
        for step in starts:
            for part, chosen in enumerate(batches(units, setup.settings["batch_size"])):
                if batch >= done:
                    writer.write_batch(batch, {step: (part, regenerate(setup, layout, sources, keep, step, chosen))})
                    progress.update(1)
                batch += 1
            t, _ = layout.time_of(step)
            log.info(
                "t = %.3g: %d source images x %d repeats regenerated", t, len(sources.rows), setup.settings["repeats"]
            )


def forward_backward_step(experiment: str, params: dict) -> None:
    files = ExperimentPaths(experiment)
    setup = prepare_sampling(experiment, params, "forward_backward")
    dataset = load_dataset(experiment, setup)
    starts = setup.steps_before_end()
    condition = setup.condition()
    sources = choose_sources(experiment, setup, dataset)
    layout = regeneration_layout(setup, sources, starts, condition)
    writer = setup.writer("forward_backward", files.forward_backward, layout, files.dataset_files)
    regenerate_all(setup, layout, sources, writer, condition)
    writer.finish()
    log.info(
        "%d source images (%s), %d times, %s regeneration",
        len(sources.rows),
        ", ".join(f"{(sources.split[sources.rows] == s).sum()} {s}" for s in ("train", "test")),
        len(starts),
        f"conditioned on {', '.join(condition)}" if condition else "unconditional",
    )


if __name__ == "__main__":
    run_step("forward_backward", forward_backward_step)
