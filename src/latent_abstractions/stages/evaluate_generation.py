"""Pipeline step (bumps): generation accuracy and the representation of the condition at
every training checkpoint (Liang, Liu & Fiete's phases A, B, C).

For each EMA snapshot in model/checkpoints/, one image per lattice position of the data
set is generated for its (x, y); bumps are counted and located (generation_metrics.py)
and each sample is judged accurate or not, per axis, inside and outside a held-out
region (the data set's test rows). The conditional pass's pooled activations at the
representation tap, for every requested (x, y) on one shared noisy input at
``representation_t`` (so that they differ by the condition alone), give the order
measures of representation.py and a phase label per checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from .. import checkpoints, generation_metrics, paths, representation
from ..artifacts import provenance, write_parquet, write_series_csv
from ..cli import InputError, run_step
from ..datasets import base
from ..generation import generate
from ..sde import make_sde

log = logging.getLogger("evaluate_generation")


def snapshot_step(path: Path) -> int:
    return int(path.stem.removeprefix("step_"))


@torch.no_grad()
def condition_activations(model, sde, values: torch.Tensor, image_shape: tuple, tap: str, t: float,
                          seed: int) -> np.ndarray:
    """The tap's pooled activations of the conditional pass, one shared x_t for all conditions."""
    generator = torch.Generator().manual_seed(seed)
    x = sde.prior_sample((1, *image_shape), generator).to(values.device).expand(len(values), *image_shape)
    times = torch.full((len(values),), t, device=values.device)
    _, activations = model(x, times, values, torch.ones_like(values, dtype=torch.bool), taps=[tap])
    return activations[tap].float().mean(dim=(2, 3)).cpu().numpy()


def evaluate_checkpoint(path: Path, params: dict, dataset, device) -> tuple[list[dict], dict]:
    settings = params["generation"]
    model, metadata = checkpoints.load_for_params(path, params["model"])
    model.to(device)
    architecture = metadata["architecture"]
    image_shape = (architecture["image_channels"], *architecture["image_size"])
    sde = make_sde(params["sde"])
    names = [f["name"] for f in architecture["factors"]]
    values = torch.tensor(dataset.factors[names].to_numpy(), dtype=torch.float32, device=device)
    keep = torch.ones_like(values, dtype=torch.bool)
    images = generate(model, sde, values, keep, image_shape, settings["sampler"], settings["steps"],
                      settings["t_end"], settings["seed"]).cpu().numpy()
    requested_y = dataset.factors["y"].to_numpy() if "y" in names else None
    judged = generation_metrics.assess(images, dataset.factors["x"].to_numpy(), requested_y,
                                       tolerance=settings["tolerance"])
    held_out = dataset.factors["split"].to_numpy() == "test"
    step = snapshot_step(path)
    rows = []
    for region, chosen in (("all", np.ones_like(held_out)), ("train_region", ~held_out), ("held_out_region", held_out)):
        if not chosen.any():
            continue
        for axis, key in (("both", "accurate"), ("x", "accurate_x"), ("y", "accurate_y")):
            if axis == "y" and requested_y is None:
                continue
            rows.append({"training_step": step, "region": region, "axis": axis, "samples": int(chosen.sum()),
                         "accuracy": float(judged[key][chosen].mean()),
                         "multi_bump_fraction": float((judged["count"][chosen] > 1).mean()),
                         "no_bump_fraction": float((judged["count"][chosen] == 0).mean()),
                         "mean_error_px": float(np.mean(judged[f"error_{'x' if axis == 'x' else 'y'}"][chosen]))
                         if axis != "both" else float(np.hypot(judged["error_x"], judged["error_y"])[chosen].mean())})
    tap = settings["representation_tap"] or f"down.{len(architecture['channel_mults']) - 1}"
    activations = condition_activations(model, sde, values, image_shape, tap, settings["representation_t"],
                                        settings["seed"] + 1)
    positions = np.stack([dataset.factors[n].to_numpy() for n in ("x", "y") if n in names], axis=1)
    order = representation.measure(activations, positions if positions.shape[1] == 2 else
                                   np.concatenate([positions, positions], axis=1))
    overall = next(r for r in rows if r["region"] == "all" and r["axis"] == "both")
    order.update(training_step=step, tap=tap, accuracy=overall["accuracy"],
                 multi_bump_fraction=overall["multi_bump_fraction"],
                 phase=representation.phase(overall["multi_bump_fraction"], overall["accuracy"], order["r2_pca"]))
    return rows, order


def evaluate_step(experiment: str, params: dict) -> None:
    snapshots = sorted(paths.checkpoints_dir(experiment).glob("step_*.safetensors"), key=snapshot_step)
    try:
        if not snapshots:
            raise InputError(f"no checkpoints in {paths.checkpoints_dir(experiment)}")
        dataset = base.load(paths.dataset_dir(experiment))
        if {f.name for f in dataset.factor_table} - {"x", "y"}:
            raise InputError(f"{experiment}: generation accuracy needs a bumps data set (factors x, y)")
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from None
    device = checkpoints.select_device()
    accuracy, representations = [], []
    for path in snapshots:
        try:
            rows, order = evaluate_checkpoint(path, params, dataset, device)
        except ValueError as exc:  # CheckpointError included
            raise InputError(str(exc)) from None
        accuracy += rows
        representations.append(order)
        log.info("step %d: accuracy %.3f, multi-bump %.3f, r2_pca %.3f, phase %s", order["training_step"],
                 order["accuracy"], order["multi_bump_fraction"], order["r2_pca"], order["phase"])
    section = {key: params[key] for key in ("sde", "model", "generation")}
    meta = provenance("evaluate_generation", experiment, section, [*paths.dataset_files(experiment), *snapshots])
    accuracy = pd.DataFrame(accuracy)
    write_series_csv(accuracy, "training_step", ["region", "axis"], "accuracy", paths.plot_data(experiment, "generation"))
    for frame, target in ((accuracy, paths.generation_accuracy(experiment)),
                          (pd.DataFrame(representations), paths.generation_representation(experiment))):
        frame.insert(0, "experiment", experiment)
        write_parquet(pa.Table.from_pandas(frame, preserve_index=False), target, meta)


if __name__ == "__main__":
    run_step("evaluate_generation", evaluate_step)
