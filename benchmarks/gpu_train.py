"""Training speed against the hardware: the resident loop (``train(..., resident=True)``:
the data set on the device, draws made there, losses read every ``log_every`` steps)
and, on CUDA, the graphed loop (the resident loop with ``train.cuda_graph``: each step
replayed from one CUDA graph, graphed_step.py) against the host loop (each batch
gathered from storage on the CPU, each loss read at once), side by side in one run,
through the pipeline's own data path (a data set saved by ``datasets.base``,
memory-mapped, read by ``image_rows.ImageRows``).

Run from the repository root, no arguments:

    .venv/bin/python benchmarks/gpu_train.py

On CUDA it times the paper-bumps and paper-shapes models (``MODELS``: a space-separated choice of their names) exactly as
workflow/configs/paper-bumps.yaml and paper-shapes.yaml configure them (architecture,
batch, precision, compile) on a few thousand images of their resolution, and prints
images/s, ms per step, the peak memory and the model FLOP utilisation (FLOPs of one
forward + backward counted by ``torch.utils.flop_counter``, over the device's dense bf16
peak, ``devices.peak_flops``; ``PEAK_FLOPS`` overrides it). On a CPU it times the default
params' bumps model. Timed windows of the two loops alternate, so a machine that is
busier for a while slows both; each figure is the median over its windows. The last line
is ``speedup=<new loop / host loop images/s>``, the new loop being the graphed one on
CUDA (the first model's) and the resident one on a CPU.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from latent_abstractions.core.devices import peak_flops, select_device
from latent_abstractions.datasets import base, bumps, shapes
from latent_abstractions.diffusion import checkpoints
from latent_abstractions.diffusion.sde import make_sde
from latent_abstractions.pipeline.params import experiment as experiment_section
from latent_abstractions.pipeline.params import load as load_params
from latent_abstractions.training.train import TrainConfig, Trainer, denoising_loss, train

ROOT = Path(__file__).resolve().parent.parent
CUDA_MODELS = (
    ("paper-bumps", "workflow/configs/paper-bumps.yaml", "bumps"),
    ("paper-shapes", "workflow/configs/paper-shapes.yaml", "shapes"),
)
CPU_MODELS = (("default bumps", "params.yaml", "bumps"),)
# 4 values of each factor (4,096 scenes): the data path is the paper set's, made in seconds.
SHAPES_SUBSET = {
    "floor_hue": [0, 3, 6, 9],
    "wall_hue": [0, 3, 6, 9],
    "object_hue": [0, 3, 6, 9],
    "scale": [0, 2, 5, 7],
    "orientation": [0, 5, 9, 14],
}
WINDOWS, STEPS_PER_WINDOW = 5, {"cuda": 100, "cpu": 60}
if os.environ.get("DEVICE_CHECK_TINY") == "1":  # the device check's rehearsal on a CPU: the mechanics only
    WINDOWS, STEPS_PER_WINDOW = 1, {"cuda": 5, "cpu": 5}


@dataclasses.dataclass
class Measured:
    images_per_s: float
    ms_per_step: float
    peak_memory_gib: float | None


def experiment_params(overlay: str, experiment: str) -> dict:
    """One experiment's params as the pipeline reads them (validated, defaults filled)."""
    return experiment_section(load_params(ROOT / overlay), experiment)


def saved_dataset(spec: dict, folder: Path) -> base.Dataset:
    """The experiment's data set (a subset of the scenes), saved and memory-mapped as the pipeline reads it."""
    if spec["kind"] == "bumps":
        keys = ("height", "width", "sigma", "spacing_x", "spacing_y", "margin")
        dataset = bumps.make(**{key: spec[key] for key in keys})
    else:
        dataset = shapes.make(spec["size"], SHAPES_SUBSET)
    base.save(dataset, folder, {"step": "benchmark"})
    return base.load(folder)


# loop name -> (resident, cuda_graph)
LOOPS = {"host": (False, False), "resident": (True, False), "graphed": (True, True)}


def make_trainer(params: dict, dataset: base.Dataset, device: torch.device, steps: int, graphed: bool) -> Trainer:
    architecture = checkpoints.architecture_from_params(params["model"], dataset.factor_table, dataset.images.shape[1:])
    torch.manual_seed(0)
    model = checkpoints.build_model(architecture)
    settings = {**params["train"], "steps": steps, "checkpoints": 0, "resume_every": 0, "cuda_graph": graphed}
    settings["compile"] = settings.get("compile", False) and device.type == "cuda"
    return Trainer(model, make_sde(params["sde"]), TrainConfig(**settings), device)


def time_window(trainer: Trainer, dataset: base.Dataset, steps: int, resident: bool) -> float:
    """Seconds for ``steps`` more steps of one loop (the trainer's step budget grows by them)."""
    trainer.config.steps = trainer.step_index + steps
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    train(trainer, dataset.images, dataset.condition_values(), resident=resident)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def flops_per_image(trainer: Trainer, dataset: base.Dataset) -> float:
    """FLOPs of one forward + backward per image, on the math attention backend (the flop
    counter has formulas for its matmuls, not for the fused kernels)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    size, device = trainer.config.batch_size, trainer.device
    batch = trainer.draw(len(dataset.images), dataset.images.shape[1:], dataset.condition_values().shape[1])
    x0 = torch.zeros((size, *dataset.images.shape[1:]), device=device)
    values = torch.zeros((size, batch.keep.shape[1]), device=device)
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        with trainer.autocast:
            loss = denoising_loss(trainer.model, trainer.sde, x0, values, batch.keep, batch.t, batch.noise)
        loss.backward()  # inside the counter: the backward pass is about two thirds of the FLOPs
    trainer.model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / size


def measure(name: str, overlay: str, experiment: str, device: torch.device) -> dict[str, Measured]:
    params = experiment_params(overlay, experiment)
    steps = STEPS_PER_WINDOW[device.type]
    with tempfile.TemporaryDirectory() as folder:
        dataset = saved_dataset(params["dataset"], Path(folder))
        loops = {loop: flags for loop, flags in LOOPS.items() if device.type == "cuda" or not flags[1]}
        trainers = {loop: make_trainer(params, dataset, device, steps, graphed) for loop, (_, graphed) in loops.items()}
        for loop, trainer in trainers.items():  # compile, cudnn autotuning, graph capture, first-touch
            time_window(trainer, dataset, steps, resident=loops[loop][0])
        seconds, memory = {loop: [] for loop in trainers}, {}
        for _ in range(WINDOWS):
            for loop, trainer in trainers.items():
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                seconds[loop].append(time_window(trainer, dataset, steps, resident=loops[loop][0]))
                if device.type == "cuda":  # every loop's model is held: an upper bound on its own
                    memory[loop] = max(memory.get(loop, 0.0), torch.cuda.max_memory_allocated(device) / 2**30)
        per_image = flops_per_image(trainers["host"], dataset)
    batch = params["train"]["batch_size"]
    peak, peak_source = peak_flops(device)
    results = {}
    for loop, times in seconds.items():
        median = statistics.median(times)
        results[loop] = Measured(steps * batch / median, 1e3 * median / steps, memory.get(loop))
        mfu = f", MFU {results[loop].images_per_s * per_image / peak:.1%} of {peak_source}" if peak else ""
        memory_text = f", peak memory {memory[loop]:.1f} GiB" if loop in memory else ""
        print(
            f"{name} ({loop} loop): {results[loop].images_per_s:,.0f} images/s, "
            f"{results[loop].ms_per_step:.1f} ms/step at batch {batch}{memory_text}{mfu}"
        )
    print(f"{name}: {per_image / 1e9:.2f} GFLOP per image (forward + backward)")
    return results


def main() -> None:
    device = select_device()
    chosen = os.environ.get("MODELS", "").split()  # the device check times one model per part
    models = [m for m in CUDA_MODELS if not chosen or m[0] in chosen] if device.type == "cuda" else CPU_MODELS
    torch.set_num_threads(torch.get_num_threads() if device.type == "cuda" else 1)
    ratios = []
    for name, overlay, experiment in models:
        results = measure(name, overlay, experiment, device)
        for loop in results.keys() - {"host"}:
            print(f"{name}: {loop} / host loop = {results[loop].images_per_s / results['host'].images_per_s:.2f}")
        newest = "graphed" if "graphed" in results else "resident"
        ratios.append(results[newest].images_per_s / results["host"].images_per_s)
    sys.stdout.flush()
    print(f"speedup={ratios[0]:.3f}")


if __name__ == "__main__":
    main()
