"""Pipeline step (bumps): generation accuracy and the representation of the condition at
every training checkpoint (Liang, Liu & Fiete's phases A, B, C).

For each EMA snapshot in model/checkpoints/, one image per lattice position of the data
set is generated for its (x, y); bumps are counted and located (generation_metrics.py)
and each sample is judged accurate or not, per axis, inside and outside a held-out
region (the data set's test rows). The conditional pass's whole activation maps at every
block, for every requested (x, y) on one shared noisy input at ``representation_t`` (so
that they differ by the condition alone), give the geometry of representation.py: the
phase per checkpoint reads the ``representation_tap`` block (the deepest encoder block by
default), and the generation behaviour is a second sequence beside it. Two controls go
in the same table: the untrained network, and the final representation with its rows
permuted. That block's manifold is also pictured in 2-D (PCA, UMAP).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from ..analysis import generation_metrics, representation
from ..core.artifacts import provenance, write_parquet, write_series_csv
from ..core.devices import select_device
from ..core.errors import InputError
from ..core.progress import Progress
from ..datasets import base
from ..diffusion import checkpoints
from ..diffusion.generation import generate
from ..diffusion.sde import make_sde
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..report import manifold_pictures
from ..training.snapshot_schedule import snapshot_step, snapshots_in

log = logging.getLogger("evaluate_generation")


@torch.no_grad()
def condition_activations(
    model, sde, values: torch.Tensor, image_shape: tuple, taps: list[str], t: float, seed: int
) -> dict[str, np.ndarray]:
    """Each tap's whole activation maps of the conditional pass, flattened per condition,
    on one shared x_t for all conditions."""
    generator = torch.Generator().manual_seed(seed)
    x = sde.prior_sample((1, *image_shape), generator).to(values.device).expand(len(values), *image_shape)
    times = torch.full((len(values),), t, device=values.device)
    _, activations = model(x, times, values, torch.ones_like(values, dtype=torch.bool), taps=taps)
    return {tap: activations[tap].float().flatten(1).cpu().numpy() for tap in taps}


def accuracy_rows(judged: dict, held_out: np.ndarray, step: int, has_y: bool) -> list[dict]:
    """Accuracy and failure modes per region (all, train, held-out) and axis (both, x, y):
    within the tolerance in pixels, and within half of each axis's lattice spacing."""
    rows = []
    for region, chosen in (("all", np.ones_like(held_out)), ("train_region", ~held_out), ("held_out_region", held_out)):
        if not chosen.any():
            continue
        for axis, key in (("both", "accurate"), ("x", "accurate_x"), ("y", "accurate_y")):
            if axis == "y" and not has_y:
                continue
            error = (
                np.hypot(judged["error_x"], judged["error_y"])
                if axis == "both"
                else judged[f"error_{'x' if axis == 'x' else 'y'}"]
            )
            rows.append(
                {
                    "training_step": step,
                    "region": region,
                    "axis": axis,
                    "samples": int(chosen.sum()),
                    "accuracy": float(judged[key][chosen].mean()),
                    "accuracy_half_spacing": float(judged[f"{key}_half_spacing"][chosen].mean()),
                    "multi_bump_fraction": float((judged["count"][chosen] > 1).mean()),
                    "no_bump_fraction": float((judged["count"][chosen] == 0).mean()),
                    "mean_error_px": float(np.mean(error[chosen])),
                }
            )
    return rows


def representation_rows(
    activations: dict[str, np.ndarray], positions: np.ndarray, phase_tap: str, overall: dict, reference: str
) -> list[dict]:
    """The geometry at every tap; the representation phase (the same on every row) from
    ``phase_tap``, and beside it the generation behaviour of the samples. ``reference``
    says what was measured: a training checkpoint, or one of the two controls."""
    enough = representation.measurable(len(positions))
    measured = {
        tap: representation.measure(maps, positions) if enough else representation.unmeasured()
        for tap, maps in activations.items()
    }
    at_tap = measured[phase_tap]
    label = representation.representation_phase(at_tap["intrinsic_dimension"], at_tap["knn_r2"])
    behaviour = (
        representation.generation_behaviour(overall["multi_bump_fraction"], overall["accuracy"])
        if reference == "checkpoint"
        else ""
    )
    return [
        {
            "training_step": overall["training_step"],
            "reference": reference,
            "tap": tap,
            "phase_tap": tap == phase_tap,
            **order,
            "accuracy": overall["accuracy"],
            "multi_bump_fraction": overall["multi_bump_fraction"],
            "phase": label,
            "generation_behaviour": behaviour,
        }
        for tap, order in measured.items()
    ]


def permuted(activations: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The same vectors assigned to other conditions: the geometry kept, the order destroyed."""
    order = np.random.default_rng(seed).permutation(len(next(iter(activations.values()))))
    return {tap: maps[order] for tap, maps in activations.items()}


def embedding_rows(maps: np.ndarray, positions: np.ndarray, step: int, tap: str, seed: int) -> list[dict]:
    return [
        {
            "training_step": step,
            "tap": tap,
            "method": method,
            "x": float(x),
            "y": float(y),
            "c1": float(c1),
            "c2": float(c2),
        }
        for method, coordinates in manifold_pictures.pictures(maps, seed).items()
        for (x, y), (c1, c2) in zip(positions, coordinates)
    ]


def requested_positions(dataset, names: list[str]) -> np.ndarray:
    """(n, 2) requested (x, y); stripes (x only) repeat x."""
    columns = [dataset.factors[n].to_numpy() for n in ("x", "y") if n in names]
    return np.stack(columns * (3 - len(columns)), axis=1)


def evaluate_checkpoint(
    path: Path, experiment: str, params: dict, dataset, device, pictured: bool
) -> tuple[list[dict], list[dict], list[dict], dict]:
    settings = params["generation"]
    model, metadata = checkpoints.load_for_params(path, params, experiment)
    model.to(device)
    architecture = metadata["architecture"]
    image_shape = (architecture["image_channels"], *architecture["image_size"])
    sde = make_sde(params["sde"])
    names = [f["name"] for f in architecture["factors"]]
    values = torch.tensor(dataset.factors[names].to_numpy(), dtype=torch.float32, device=device)
    drawn = sampled_rows(len(values), settings["max_positions"], settings["seed"])
    keep = torch.ones_like(values[drawn], dtype=torch.bool)
    images = (
        generate(
            model,
            sde,
            values[drawn],
            keep,
            image_shape,
            settings["sampler"],
            settings["steps"],
            settings["t_end"],
            settings["seed"],
        )
        .cpu()
        .numpy()
    )
    requested_y = dataset.factors["y"].to_numpy()[drawn] if "y" in names else None
    judged = generation_metrics.assess(
        images,
        dataset.factors["x"].to_numpy()[drawn],
        requested_y,
        tolerance=settings["tolerance"],
        spacing=lattice_spacing(dataset),
    )
    step = snapshot_step(path)
    held_out = dataset.factors["split"].to_numpy()[drawn] == "test"
    accuracy = accuracy_rows(judged, held_out, step, requested_y is not None)
    overall = next(r for r in accuracy if r["region"] == "all" and r["axis"] == "both")
    phase_tap, positions = phase_tap_of(model, settings), requested_positions(dataset, names)
    activations = condition_activations(
        model, sde, values, image_shape, model.tap_names, settings["representation_t"], settings["seed"] + 1
    )
    orders = representation_rows(activations, positions, phase_tap, overall, "checkpoint")
    pictures = (
        embedding_rows(activations[phase_tap], positions, step, phase_tap, settings["seed"])
        if pictured and representation.measurable(len(positions))
        else []
    )
    return accuracy, orders, pictures, activations


def sampled_rows(count: int, at_most: int, seed: int) -> np.ndarray:
    """The lattice positions whose samples are drawn: all, or a seeded subset of
    ``at_most`` in lattice order (0: all). The representation always reads every position."""
    if at_most <= 0 or at_most >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, at_most, replace=False))


def lattice_spacing(dataset) -> tuple[float, float]:
    """Each axis's spacing between neighbouring lattice values, from the factor table (the
    lattice, also for centres drawn at random); inf for a single value."""
    lattices = {factor.name: np.asarray(factor.values, dtype=np.float64) for factor in dataset.factor_table}

    def spacing(name: str) -> float:
        values = np.unique(lattices.get(name, np.array([])))
        return float(np.min(np.diff(values))) if len(values) > 1 else float("inf")

    return spacing("x"), spacing("y")


def phase_tap_of(model, settings: dict) -> str:
    """The block the phase reads; ``deepest_encoder`` names the last encoder block before the
    bottleneck, the block Liang et al. read."""
    tap = settings["representation_tap"]
    return model.tap_names[model.levels - 1] if tap == "deepest_encoder" else tap


def check_phase_tap(snapshot: Path, experiment: str, params: dict) -> None:
    """A representation tap the network lacks: one line listing its taps, before any compute."""
    model, _ = checkpoints.load_for_params(snapshot, params, experiment)
    model.check_taps([phase_tap_of(model, params["generation"])])


def random_network(params: dict, dataset, device) -> torch.nn.Module:
    """The architecture with every layer at PyTorch's default initialisation, seeded by the
    generation seed. Training's own initialisation zeroes each residual branch's last layer,
    so its untrained network ignores the condition entirely: a control that measures nothing."""
    torch.manual_seed(params["generation"]["seed"])
    architecture = checkpoints.architecture_from_params(params["model"], dataset.factor_table, dataset.images.shape[1:])
    model = checkpoints.build_model(architecture)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model.to(device).eval()


def control_rows(final_activations: dict, final_step: int, params: dict, dataset, device) -> list[dict]:
    """The two references the phase thresholds are read against: an untrained network
    (random_network; its samples are not drawn, so its generation behaviour is left empty)
    and the final representation with its rows permuted."""
    settings = params["generation"]
    names = [f.name for f in dataset.factor_table]
    positions = requested_positions(dataset, names)
    model = random_network(params, dataset, device)
    values = torch.tensor(dataset.factors[names].to_numpy(), dtype=torch.float32, device=device)
    sde, shape = make_sde(params["sde"]), dataset.images.shape[1:]
    untrained = condition_activations(
        model, sde, values, shape, model.tap_names, settings["representation_t"], settings["seed"] + 1
    )
    tap = phase_tap_of(model, settings)
    unsampled = {"training_step": 0, "accuracy": float("nan"), "multi_bump_fraction": float("nan")}
    final = {**unsampled, "training_step": final_step}
    return representation_rows(untrained, positions, tap, unsampled, "untrained") + representation_rows(
        permuted(final_activations, settings["seed"]), positions, tap, final, "permuted"
    )


def checked_inputs(experiment: str, params: dict) -> tuple[list[Path], object]:
    """The snapshots in training order and the data set, or one line saying what is wrong."""
    files = ExperimentPaths(experiment)
    snapshots = snapshots_in(files.checkpoints_dir)
    dataset = base.load(files.dataset_dir)
    if {f.name for f in dataset.factor_table} - {"x", "y"}:
        raise InputError(f"{experiment}: generation accuracy needs a bumps data set (factors x, y)")
    check_phase_tap(snapshots[0], experiment, params)
    return snapshots, dataset


def checkpoint_tables(
    snapshots: list[Path], experiment: str, params: dict, dataset, device
) -> tuple[dict[str, list[dict]], dict[str, np.ndarray]]:
    """The accuracy, representation and embedding rows of every snapshot, in training
    order, and the last one's activations."""
    tables = {"accuracy": [], "representation": [], "embedding": []}
    shown = set(manifold_pictures.pictured([snapshot_step(path) for path in snapshots]))
    with Progress(len(snapshots), f"evaluate {experiment}", "checkpoint") as progress:
        for path in snapshots:
            *rows, activations = evaluate_checkpoint(
                path, experiment, params, dataset, device, snapshot_step(path) in shown
            )
            for name, part in zip(tables, rows):
                tables[name] += part
            at_phase_tap = next(r for r in rows[1] if r["phase_tap"])
            log.info(
                "step %d: accuracy %.3f, multi-bump %.3f, knn_r2 (%s) %.3f, dimension %.2f, phase %s",
                at_phase_tap["training_step"],
                at_phase_tap["accuracy"],
                at_phase_tap["multi_bump_fraction"],
                at_phase_tap["tap"],
                at_phase_tap["knn_r2"],
                at_phase_tap["intrinsic_dimension"],
                at_phase_tap["phase"],
            )
            progress.update(1, step=at_phase_tap["training_step"], accuracy=f"{at_phase_tap['accuracy']:.3f}")
    return tables, activations


def evaluate_step(experiment: str, params: dict) -> None:
    files = ExperimentPaths(experiment)
    snapshots, dataset = checked_inputs(experiment, params)
    device = select_device()
    tables, activations = checkpoint_tables(snapshots, experiment, params, dataset, device)
    tables["representation"] += control_rows(activations, snapshot_step(snapshots[-1]), params, dataset, device)
    section = {key: params[key] for key in ("sde", "model", "generation")}
    meta = provenance("evaluate_generation", experiment, section, [*files.dataset_files, *snapshots])
    frames = {name: pd.DataFrame(rows) for name, rows in tables.items()}
    write_series_csv(frames["accuracy"], "training_step", ["region", "axis"], "accuracy", files.plot_data("generation"))
    targets = {
        "accuracy": files.generation_accuracy,
        "representation": files.generation_representation,
        "embedding": files.generation_embedding,
    }
    for name, frame in frames.items():
        frame.insert(0, "experiment", experiment)
        write_parquet(pa.Table.from_pandas(frame, preserve_index=False), targets[name], meta)


if __name__ == "__main__":
    run_step("evaluate_generation", evaluate_step)
