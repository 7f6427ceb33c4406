"""Sampling and analysis speed against the code paths they replace, side by side in one
run: the trajectory store, the forks and the information estimate of one experiment.

Run from the repository root, no arguments:

    .venv/bin/python benchmarks/gpu_sampling.py

- ``store``: trajectories recorded as sample_trajectories records them (the recorder
  with the experiment's taps, its recorded steps, batches and evaluation blocks). Old:
  noise drawn row by row, one generator call per trajectory and draw (the path before
  counter_noise.py), the network eager. New: counter-based noise for the whole batch,
  and on CUDA the network compiled (``sample.compile``).
- ``forks``: ``parents x branches`` continuations through forking.run, from the prior
  down the fork sampler's grid (every branch's whole length: an upper bound on a fork
  stage), old and new noise as above.
- ``information``: information.mutual_information on the experiment's data set, old
  with 256 rows per network call (the previous default), new with
  ``information.batch_rows``. On CUDA also bf16 against fp32 on the same draws: the
  largest gap of I(factor; X_t) per point, in nats, against the 0.01 the overlays require
  before bf16 may become the default.

On CUDA the experiment is paper-bumps (workflow/configs/paper-bumps.yaml) and the new
paths run at their configured size; the old paths run on a fraction (OLD_FRACTION) and
are scaled to it (their cost is linear in trajectories and points). On a CPU it is the
default params' bumps at a reduced size. The network is randomly initialised: speed does
not depend on the weights. The bf16 gap does, so it is checked only on trained weights
(WEIGHTS=data/bumps/model/weights.safetensors); each new path is warmed on one batch (or
two points), not by a whole run. The last line is ``speedup=<old / new, all three>``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from gpu_train import experiment_params, saved_dataset

from latent_abstractions.analysis import information
from latent_abstractions.analysis.ground_truth import FiniteMixture
from latent_abstractions.core.devices import select_device
from latent_abstractions.diffusion import checkpoints
from latent_abstractions.diffusion.counter_noise import CounterNoise
from latent_abstractions.diffusion.samplers import SAMPLERS
from latent_abstractions.diffusion.sde import make_sde, time_grid
from latent_abstractions.sampling import forking
from latent_abstractions.sampling.recording import TrajectoryRecorder, recorded_steps, stream_seed
from latent_abstractions.stages.sampling_setup import compiled

OLD_FRACTION = 8  # CUDA: the old paths run 1/8 of the work
CPU_SIZE = {"trajectories": 128, "steps": 50, "parents": 4, "branches": 8, "points": 4, "samples": 128}


class PerRowNoise:
    """The noise before counter_noise.py: row i from its own torch generator, one call per row."""

    def __init__(self, seeds, device):
        self.streams = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        self.device = device

    def __call__(self, shape, dtype=torch.float32):
        out = torch.empty(tuple(shape), dtype=dtype, device=self.device)
        for row, stream in zip(out, self.streams):
            row.normal_(generator=stream)
        return out


def timed(work: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def sample_store(model, sde, settings, taps, values, image_shape, noise_type) -> None:
    times = time_grid(sde.T, settings["t_end"], settings["steps"], sde=sde, spacing=settings["spacing"])
    steps = recorded_steps(settings["record"], times, sde, "sample.record")
    for start in range(0, len(values), settings["batch_size"]):
        ids = range(start, min(len(values), start + settings["batch_size"]))
        noise = noise_type([stream_seed(settings["seed"], 0, j) for j in ids], values.device)
        prior = sde.prior_std() * noise((len(ids), *image_shape))
        recorder = TrajectoryRecorder(model, sde, values[ids], steps, taps, block=settings["eval_block"])
        SAMPLERS[settings["sampler"]](recorder, sde, prior, times, noise=noise)


def run_forks(model, sde, settings, values, image_shape, noise_type) -> None:
    times = time_grid(sde.T, settings["t_end"], settings["steps"], sde=sde, spacing=settings["spacing"])
    keep = torch.zeros(values.shape, dtype=torch.bool, device=values.device)  # unconditional branches
    for start in range(0, len(values), settings["batch_size"]):
        rows = slice(start, start + settings["batch_size"])
        seeds = [stream_seed(settings["seed"], 2, j) for j in range(start, start + len(values[rows]))]
        forking.run(model, sde, settings["sampler"], times, values[rows], keep[rows], seeds,
                    image_shape=image_shape, block=settings["eval_block"], noise_type=noise_type)  # fmt: skip


def estimate(model, sde, source, settings, device, rows, precision="fp32", points=None):
    return information.mutual_information(
        model, sde, source, t_end=settings["t_end"], points=points or settings["integration_points"],
        samples=settings["samples"], seed=settings["seed"], device=device, batch_size=rows,
        consistency=settings.get("consistency", True), precision=precision,
    )  # fmt: skip


def sized(params: dict, cuda: bool) -> dict:
    """The experiment's sections, at the CPU size off CUDA."""
    if cuda:
        return params
    small = CPU_SIZE
    return {
        **params,
        "sample": {**params["sample"], "steps": small["steps"]},
        "fork": {**params["fork"], "steps": small["steps"], "parents": small["parents"], "branches": small["branches"]},
        "information": {**params["information"], "integration_points": small["points"], "samples": small["samples"]},
    }


def network(params, dataset, device):
    architecture = checkpoints.architecture_from_params(params["model"], dataset.factor_table, dataset.images.shape[1:])
    torch.manual_seed(0)
    model = checkpoints.build_model(architecture)
    if os.environ.get("WEIGHTS"):
        model = checkpoints.load(Path(os.environ["WEIGHTS"]), expected_architecture=architecture)[0]
    return model.to(device).eval()


def main() -> None:
    device = select_device()
    cuda = device.type == "cuda"
    overlay = ("workflow/configs/paper-bumps.yaml", "bumps") if cuda else ("params.yaml", "bumps")
    params = sized(experiment_params(*overlay), cuda)
    torch.set_num_threads(torch.get_num_threads() if cuda else 1)
    fraction = OLD_FRACTION if cuda else 1
    with tempfile.TemporaryDirectory() as folder:
        dataset = saved_dataset(params["dataset"], Path(folder))
        model, sde = network(params, dataset, device), make_sde(params["sde"])
        fast = compiled(model) if cuda else model
        conditions = torch.tensor(np.array(dataset.condition_values()), dtype=torch.float32)
        rng = np.random.default_rng(0)
        count = len(dataset.images) * params["sample"]["per_position"] if cuda else CPU_SIZE["trajectories"]
        values = conditions[rng.integers(0, len(conditions), count)].to(device)
        branches = params["fork"]["parents"] * params["fork"]["branches"]
        fork_values = conditions[rng.integers(0, len(conditions), branches)].to(device)
        taps, info = params["model"]["taps"], params["information"]
        shape = tuple(dataset.images.shape[1:])
        source = FiniteMixture(dataset.images, dataset.bins(), dataset.condition_values(), rows=dataset.train_rows())
        source = source.to(device) if cuda else source
        old_points = max(2, info["integration_points"] // fraction)
        one_batch, one_fork_batch = params["sample"]["batch_size"], params["fork"]["batch_size"]
        parts = {  # name: (old path, new path, a warm-up of the new path: one batch or two points)
            "store": (
                lambda: sample_store(
                    model, sde, params["sample"], taps, values[: count // fraction], shape, PerRowNoise
                ),
                lambda: sample_store(fast, sde, params["sample"], taps, values, shape, CounterNoise),
                lambda: sample_store(fast, sde, params["sample"], taps, values[:one_batch], shape, CounterNoise),
            ),
            "forks": (
                lambda: run_forks(model, sde, params["fork"], fork_values[: branches // fraction], shape, PerRowNoise),
                lambda: run_forks(fast, sde, params["fork"], fork_values, shape, CounterNoise),
                lambda: run_forks(fast, sde, params["fork"], fork_values[:one_fork_batch], shape, CounterNoise),
            ),
            "information": (
                lambda: estimate(model, sde, source, info, device, 256, points=old_points),
                lambda: estimate(model, sde, source, info, device, info["batch_rows"]),
                lambda: estimate(model, sde, source, info, device, info["batch_rows"], points=2),
            ),
        }
        scale = {"store": fraction, "forks": fraction, "information": info["integration_points"] / old_points}
        totals = report_parts(parts, scale, device)
        if cuda and os.environ.get("WEIGHTS"):
            bf16_gap(model, sde, source, info, device)
        elif cuda:  # a verdict on random weights (zero residual branches) would mean nothing
            print("bf16 vs fp32: not checked; set WEIGHTS to a trained checkpoint of this model to check it")
    sys.stdout.flush()
    print(f"speedup={totals[0] / totals[1]:.3f}")


def report_parts(parts, scale, device) -> tuple[float, float]:
    totals = [0.0, 0.0]
    for name, (old, new, warm) in parts.items():
        warm()  # compile (once: one block shape), cuDNN's kernel choice, first touch; not a whole run
        old_s, new_s = timed(old, device) * scale[name], timed(new, device)
        totals = [totals[0] + old_s, totals[1] + new_s]
        print(
            f"{name}: old path {old_s:.1f} s (scaled x{scale[name]:.0f}), new path {new_s:.1f} s, x{old_s / new_s:.2f}"
        )
    return totals[0], totals[1]


def bf16_gap(model, sde, source, info, device) -> None:
    curves = {p: estimate(model, sde, source, info, device, info["batch_rows"], precision=p) for p in ("fp32", "bf16")}
    for form in information.SCORE_FORMS:
        gap = np.abs(curves["bf16"].mean[form] - curves["fp32"].mean[form]).max()
        integrand = np.abs(curves["bf16"].mean[f"{form}_integrand"] - curves["fp32"].mean[f"{form}_integrand"]).max()
        verdict = "within" if gap <= 0.01 else "NOT within"
        print(f"bf16 vs fp32, {form}: largest gap {gap:.4f} nats ({verdict} 0.01), integrand {integrand / 2:.4f}")


if __name__ == "__main__":
    main()
