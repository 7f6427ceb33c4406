"""Pipeline step: train the conditional score network of one experiment.

Writes the final EMA weights, EMA snapshots at log-spaced steps (checkpoints/), the
loss per step, and metrics and loss curves for DVC (live/). Work in progress lives in .partial/
beside them (the rolling resume checkpoint and the snapshots so far), which
Snakemake and DVC leave alone when they clear a failed job's outputs, so a killed
run started again resumes where it stopped. Under torchrun every rank trains; rank 0 writes.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import torch

from ..core.artifacts import atomic_path, params_sha256, provenance, write_json, write_parquet
from ..core.errors import InputError
from ..datasets import base
from ..diffusion import checkpoints
from ..diffusion.sde import make_sde
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..training import resume
from ..training.distributed import World, close_world, device_for, init_world
from ..training.snapshot_schedule import snapshot_name
from ..training.train import TrainConfig, Trainer, train

log = logging.getLogger("train_score_model")


def write_metrics(experiment: str, history: list[tuple[int, float, float]], every: int) -> None:
    """The final loss as metrics.json (`dvc exp show`) and the curves as TSV (`dvc plots show`),
    in dvclive's layout but without its timestamps, so equal runs give equal bytes."""
    files = ExperimentPaths(experiment)
    final = history[-min(50, len(history)) :]
    metrics = {
        "step": len(history),
        "train": {"loss": sum(loss for _, loss, _ in final) / len(final), "learning_rate": history[-1][2]},
    }
    write_json(metrics, files.live_metrics)
    kept = [row for row in history if (row[0] + 1) % every == 0 or row[0] + 1 == len(history)]
    for column, name in ((1, "loss"), (2, "learning_rate")):
        with atomic_path(files.live_plot(name)) as temporary:
            temporary.write_text(f"step\t{name}\n" + "".join(f"{row[0] + 1}\t{row[column]:.6g}\n" for row in kept))


LIVE_EVERY_S = 1.0  # a fast GPU logs many times a second; DVC's viewers need no more than this


def live_metrics_writer(experiment: str, trainer: Trainer) -> Callable[[int, float], None]:
    """An ``on_log`` that rewrites live/ with the metrics so far, so that `dvc exp show` and
    `dvc plots show` follow a running training (every ``log_every`` steps, at most once per
    LIVE_EVERY_S), and puts the loss in the log. The end of training writes the final files."""
    last_written = [-math.inf]

    def write(step: int, loss: float) -> None:
        if time.monotonic() - last_written[0] >= LIVE_EVERY_S:
            write_metrics(experiment, trainer.history, trainer.config.log_every)
            last_written[0] = time.monotonic()
            log.info("step %d/%d: loss %.4f", step, trainer.config.steps, loss)

    return write


def train_step(experiment: str, params: dict) -> None:
    world = init_world()
    try:
        run_training(experiment, params, world)
    finally:
        close_world(world)


def run_training(experiment: str, params: dict, world: World) -> None:
    files = ExperimentPaths(experiment)
    dataset = training_data(experiment, params)
    architecture = checkpoints.architecture_from_params(params["model"], dataset.factor_table, dataset.images.shape[1:])
    trainer = make_trainer(architecture, params, world)
    section = {key: params[key] for key in ("sde", "model", "train")}
    meta = provenance("train_score_model", experiment, section, files.dataset_files)
    # A resume checkpoint is used only by the same params (train.cuda_graph among them), inputs,
    # code, world size and device type (a CUDA run's optimiser state is not a CPU run's); any
    # other is discarded and training starts over, with one warning (never a mix of two runs).
    fingerprint = params_sha256(
        {
            **section,
            "inputs": meta["inputs"],
            "code": meta["code_sha256"],
            "world": world.size,
            "device": trainer.device.type,
        }
    )
    partial = files.partial_dir
    resume_file, snapshots = partial / "resume.safetensors", partial / "checkpoints"
    resume_or_start_over(trainer, resume_file, fingerprint, world)

    def save_snapshot(step: int) -> None:
        if world.is_main:
            checkpoints.save_state(
                trainer.ema.shadow, architecture, snapshots / snapshot_name(step), {**meta, "training_step": step}
            )

    def save_resume(step: int) -> None:
        if world.is_main:
            resume.save(trainer, resume_file, fingerprint)

    train(
        trainer,
        dataset.images,
        dataset.condition_values(),
        dataset.train_rows(),
        on_checkpoint=save_snapshot,
        on_resume_point=save_resume,
        on_log=live_metrics_writer(experiment, trainer) if world.is_main else None,
    )
    if world.is_main:
        write_outputs(experiment, trainer, architecture, meta, snapshots)


def training_data(experiment: str, params: dict) -> base.Dataset:
    """The experiment's data set with the factors the model is conditioned on."""
    dataset = base.load(ExperimentPaths(experiment).dataset_dir)
    try:
        return dataset.restricted(params["model"]["condition_on"])
    except InputError as exc:  # the data set knows the factor is unknown; here, which key named it
        raise InputError(f"model.condition_on: {exc}") from None


def make_trainer(architecture: dict, params: dict, world: World) -> Trainer:
    """A fresh network of ``architecture`` (seeded by the training seed) and its trainer."""
    config = TrainConfig(**params["train"])
    torch.manual_seed(config.seed)
    model = checkpoints.build_model(architecture)
    model.check_taps(params["model"]["taps"])
    trainer = Trainer(model, make_sde(params["sde"]), config, device_for(world), world)
    if world.is_main:
        log.info(
            "model: %d parameters, %d process(es), device %s",
            sum(p.numel() for p in model.parameters()),
            world.size,
            trainer.device,
        )
    return trainer


def resume_or_start_over(trainer: Trainer, resume_file: Path, fingerprint: str, world: World) -> None:
    """Continue from ``resume_file`` when it has ``fingerprint``; else clear the work in
    progress beside it (rank 0) and start from step 0."""
    found = resume.fingerprint_of(resume_file)
    if found == fingerprint:
        resume.load(trainer, resume_file)
        if world.is_main:
            log.info("resuming at step %d from %s", trainer.step_index, resume_file)
    elif world.is_main:
        if found is not None:
            log.warning(
                "starting over: %s was made by other params, inputs, code, device type or graph setting", resume_file
            )
        shutil.rmtree(resume_file.parent, ignore_errors=True)


def write_outputs(experiment: str, trainer: Trainer, architecture: dict, meta: dict, snapshots: Path) -> None:
    """The final EMA weights, the loss table and metrics; the ``snapshots`` move from the
    work in progress to their place, and the rest of the work in progress goes."""
    files = ExperimentPaths(experiment)
    checkpoints.save_state(trainer.ema.shadow, architecture, files.weights, meta)
    history = pd.DataFrame(trainer.history, columns=["step", "loss", "learning_rate"])
    write_parquet(pa.Table.from_pandas(history, preserve_index=False), files.loss_table, meta)
    write_metrics(experiment, trainer.history, trainer.config.log_every)
    final = files.checkpoints_dir
    shutil.rmtree(final, ignore_errors=True)
    snapshots.rename(final)
    shutil.rmtree(files.partial_dir, ignore_errors=True)
    log.info(
        "final loss (mean of last 50 steps): %.4f; %d snapshots in %s",
        history["loss"].tail(50).mean(),
        len(list(final.iterdir())),
        final,
    )


if __name__ == "__main__":
    run_step("train_score_model", train_step)
