"""Pipeline step (Sclocchi et al. 2024): training and held-out images noised forward to
several times t and regenerated down to t_end (unconditionally by default); the final
images, with their source's factors and split, go to the forward-backward store (layout:
trajectories.py), batch by batch and resumably."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from .. import paths
from ..artifacts import file_sha256, provenance
from ..cli import run_step
from ..datasets import base
from ..devices import select_device
from ..errors import InputError
from ..forking import batches, run, source_rows, steps_before_end
from ..pixels import model_range
from ..recording import STREAM_FORWARD_BACKWARD, keep_mask, load_network, resolve_condition, stream_seed, time_columns
from ..sde import make_sde
from ..store import StoreWriter
from ..trajectories import factor_column

log = logging.getLogger("forward_backward")


def forward_backward_step(experiment: str, params: dict) -> None:
    settings = params["forward_backward"]
    where = f"params.yaml: experiments.{experiment}.forward_backward"
    model, architecture, weights = load_network(experiment, params)
    factors = architecture["factors"]
    names = [f["name"] for f in factors]
    try:
        dataset = base.load(paths.dataset_dir(experiment)).restricted(names)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from None
    sde = make_sde(params["sde"])
    last = settings["steps"]
    try:
        times, starts = steps_before_end(settings, sde, where)
        condition = resolve_condition(settings["condition"], factors, f"{where}.condition")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    image_shape = tuple(dataset.images.shape[1:])
    if list(image_shape) != [architecture["image_channels"], *architecture["image_size"]]:
        raise InputError(f"{paths.dataset_dir(experiment)}: images {image_shape} are not the model's")
    device = select_device()
    model.to(device)
    split = (
        dataset.factors["split"].to_numpy().astype(str)
        if "split" in dataset.factors
        else np.full(len(dataset.factors), "train")
    )
    sources = source_rows(split, settings["images"], settings["seed"])
    if not len(sources):
        raise InputError(f"{paths.dataset_dir(experiment)}: no images to noise")
    conditions = dataset.condition_values()[sources]  # (N, n_factors), network input
    repeats, batch_size, seed = settings["repeats"], settings["batch_size"], settings["seed"]
    units = len(sources) * repeats
    t_values, log_snrs = time_columns(sde, times, starts)
    layout = {
        "kind": "forward_backward",
        "image_shape": list(image_shape),
        "factors": factors,
        "factor_names": names,
        "condition": condition,
        "guidance": float(settings["guidance"]),
        "sampler": settings["sampler"],
        "steps": last,
        "spacing": settings["spacing"],
        "t_end": settings["t_end"],
        "seed": seed,
        "recorded_steps": starts,
        "recorded_t": t_values,
        "recorded_log_snr": log_snrs,
        "images_per_split": settings["images"],
        "sources": len(sources),
        "repeats": repeats,
        "batch_size": batch_size,
        "eval_block": settings["eval_block"],
        "rows": {str(s): units for s in starts},
        "parts": {str(s): math.ceil(units / batch_size) for s in starts},
        "checkpoint_sha256": file_sha256(weights),
    }
    section = {key: params[key] for key in ("sde", "model", "forward_backward")}
    inputs = [*paths.dataset_files(experiment), weights]
    writer = StoreWriter(
        paths.forward_backward(experiment), layout, provenance("forward_backward", experiment, section, inputs)
    )
    done = writer.start()
    keep = keep_mask(factors, condition, units)
    batch = 0
    for index, step in enumerate(starts):
        for part, chosen in enumerate(batches(units, batch_size)):
            if batch >= done:
                which, repeat = chosen // repeats, chosen % repeats
                rows = sources[which]
                images = torch.from_numpy(model_range(np.asarray(dataset.images[rows])))
                values = torch.as_tensor(conditions[which], dtype=torch.float32).to(device)
                seeds = [stream_seed(seed, STREAM_FORWARD_BACKWARD, step, r, k) for r, k in zip(rows, repeat)]
                final, _ = run(
                    model,
                    sde,
                    settings["sampler"],
                    times[step:],
                    values,
                    keep[chosen],
                    seeds,
                    images=images,
                    guidance=settings["guidance"],
                    block=settings["eval_block"],
                )
                n = len(chosen)
                columns = {
                    "source": rows.astype(np.int32),
                    "step": np.full(n, step, np.int32),
                    "t": np.full(n, t_values[index], np.float32),
                    "log_snr": np.full(n, log_snrs[index], np.float32),
                    "repeat": repeat.astype(np.int32),
                    "split": split[rows],
                    **{factor_column("forward_backward", name): conditions[which, k] for k, name in enumerate(names)},
                    "image": final.flatten(1).float().cpu().numpy(),
                }
                writer.write_batch(batch, {step: (part, columns)})
            batch += 1
        log.info("t = %.3g: %d source images x %d repeats regenerated", t_values[index], len(sources), repeats)
    writer.finish()
    log.info(
        "%d source images (%s), %d times, %s regeneration",
        len(sources),
        ", ".join(f"{(split[sources] == s).sum()} {s}" for s in ("train", "test")),
        len(starts),
        f"conditioned on {', '.join(condition)}" if condition else "unconditional",
    )


if __name__ == "__main__":
    run_step("forward_backward", forward_backward_step)
