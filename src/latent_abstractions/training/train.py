"""Training the conditional score network: epsilon-prediction on an SDE with per-factor
condition dropout, so one network gives conditional and unconditional scores.

AdamW with linear warm-up then cosine decay, gradient clipping, an EMA of the weights
(the weights that are saved and analysed), channels_last memory format (faster convolutions
on CPUs and GPUs alike), bf16 autocast on CUDA,
optional torch.compile, data parallelism through torchrun (distributed.py), and a
seeded generator that draws every batch, time and noise, so a run resumed from its
rolling checkpoint (resume.py) continues exactly where it stopped.

Two loops (``train``): on the CPU each step reads its batch from storage and its loss
at once; on a GPU the data set stays on the device, the generator lives there, and the
losses are read every ``log_every`` steps, so the loop never waits for the device
(docs/gpu.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..core.artifacts import canonical_json
from ..core.errors import InputError, TrainingDiverged
from ..core.image_rows import ROWS_PER_READ, ImageRows, half_free_memory
from ..core.progress import Progress
from ..diffusion.conditioning import subset_keep_mask
from ..diffusion.nets.unet import ScoreUNet
from ..diffusion.schedule import learning_rate_at, training_times
from ..diffusion.sde import SDE
from . import graphed_step
from .distributed import World
from .graphed_step import GraphedUpdate, Update
from .snapshot_schedule import checkpoint_steps

log = logging.getLogger("train")


@dataclasses.dataclass
class TrainConfig:
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    keep_none: float
    keep_all: float
    keep_single: float
    ema_decay: float
    seed: int
    checkpoints: int = 17  # log-spaced EMA snapshots from the end of the warm-up to the last step
    resume_every: int = 500  # rolling resume checkpoint every n steps (0: never)
    precision: str = "fp32"  # or "bf16" (autocast, CUDA only)
    compile: bool = False
    time_sampling: str = "t"  # or "log_snr": noise levels uniform in log-SNR (training_times)
    cuda_graph: bool = False  # replay each step from one CUDA graph (graphed_step.py)
    log_every: int = 10


DETERMINISTIC = "LATENT_ABSTRACTIONS_DETERMINISTIC"  # "1": deterministic kernels only (the GPU resume test)


class ExponentialMovingAverage:
    """EMA of the weights, with the usual warm-up min(decay, (1 + n) / (10 + n))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.graph_formula = False  # a graphed run: every step, eager ones too, averages as its graph does
        # The state dict's tensors share storage with the model's parameters and buffers
        # (updated in place by the optimizer and by load_state_dict), so the lists are made once.
        current = model.state_dict()
        self.shadow = {name: value.detach().clone() for name, value in current.items()}
        floating = [name for name, value in current.items() if value.dtype.is_floating_point]
        self._averaged = [self.shadow[n] for n in floating]
        self._sources = [current[n].detach() for n in floating]
        self._copied = [(self.shadow[n], current[n]) for n in current if n not in floating]

    def next_weight(self) -> float:
        """Count one more update and return its lerp weight, 1 - decay."""
        self.updates += 1
        return 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def apply(self, weight: float | torch.Tensor) -> None:
        """shadow <- shadow + weight (weights - shadow); ``weight`` a float, or a device
        tensor that a CUDA graph reads at replay."""
        # lerp would read a tensor weight on the host; a graphed run's eager steps use the
        # graph's formula too, so that no step of it rounds differently (2,546 of 10^6 did)
        if isinstance(weight, torch.Tensor) or self.graph_formula:
            steps = torch._foreach_sub(self._sources, self._averaged)
            torch._foreach_mul_(steps, weight)
            torch._foreach_add_(self._averaged, steps)
        else:  # one fused kernel for all tensors rather than one launch per tensor
            torch._foreach_lerp_(self._averaged, self._sources, weight)
        for shadow, value in self._copied:
            shadow.copy_(value)


def denoising_loss(
    model: torch.nn.Module,
    sde: SDE,
    x0: torch.Tensor,
    factor_values: torch.Tensor,
    keep: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Epsilon-matching loss (Ho et al. 2020, eq. 14; Song et al. 2021, eq. 7 with lambda = sigma^2)."""
    x_t = sde.marginal(x0, t, noise)
    predicted, _ = model(x_t, t, factor_values, keep)
    return (predicted.float() - noise).pow(2).mean()


@dataclasses.dataclass
class Batch:
    index: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    keep: torch.Tensor


class StepInputs(NamedTuple):
    """One step's tensors on the device, in denoising_loss's argument order."""

    x0: torch.Tensor
    factor_values: torch.Tensor
    keep: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor


class Trainer:
    """One optimizer step at a time; owns the model, optimizer, EMA and batch generator."""

    def __init__(
        self, model: ScoreUNet, sde: SDE, config: TrainConfig, device: torch.device, world: World | None = None
    ):
        self.model, self.sde, self.config, self.device = model, sde, config, device
        self.world = world or World()
        if config.batch_size % self.world.size:
            raise InputError(f"batch_size {config.batch_size} does not split over {self.world.size} processes")
        cuda = device.type == "cuda"
        deterministic = os.environ.get(DETERMINISTIC) == "1"
        torch.backends.cudnn.benchmark = cuda and not deterministic  # fixed shapes: the fastest kernels, found once
        if deterministic:  # bit-exact reruns on a GPU, at some speed (needs CUBLAS_WORKSPACE_CONFIG=:4096:8)
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True)
        self.model.to(device)
        self.model.to(memory_format=torch.channels_last)
        self.network: torch.nn.Module = self.model
        if self.world.active:
            self.network = DistributedDataParallel(self.model, device_ids=[device.index] if cuda else None)
        if config.compile:
            self.network = torch.compile(self.network, dynamic=False)  # fixed batch shapes: no recompiles
        bf16 = config.precision == "bf16"
        if bf16 and not (cuda and torch.cuda.is_bf16_supported()):
            log.warning("train.precision: bf16 needs a CUDA device that has it; %s trains in fp32", device)
        # No weight-cast cache: a CUDA graph cannot hold one, and each weight is used once a pass.
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and bf16, cache_enabled=False)
        # A graphed step reads the learning rate from the device (Trainer.step_function).
        graphed = config.cuda_graph and graphed_step.refusal(device, self.world) is None
        rate = torch.tensor(config.learning_rate, device=device) if graphed else config.learning_rate
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=rate, weight_decay=0.0, fused=cuda, capturable=graphed
        )
        self.ema = ExponentialMovingAverage(self.model, config.ema_decay)
        # Counter-based (Philox) on CUDA; its state goes into the resume checkpoint either way.
        self.generator = torch.Generator(device=device if cuda else "cpu").manual_seed(config.seed)
        self.step_index = 0
        self.history: list[tuple[int, float, float]] = []
        self.graphed_update: GraphedUpdate | None = None  # one capture per trainer

    def step_function(self) -> Update:
        """``update``, or its replay from a CUDA graph when ``train.cuda_graph`` asks for it and
        can have it. A second train() call (a benchmark's next timed window) replays the
        graph this trainer has, with no new warm-up steps."""
        if not self.config.cuda_graph:
            return self.update
        reason = graphed_step.refusal(self.device, self.world)
        if reason is not None:
            log.warning(reason)
            return self.update
        if self.graphed_update is None:
            self.ema.graph_formula = True  # the eager warm-up steps average as the graph does
            self.graphed_update = GraphedUpdate(self)
        return self.graphed_update

    def advance_step(self) -> None:
        """One update done (eagerly or by a graph replay)."""
        self.step_index += 1

    def draw(self, n_data: int, image_shape: tuple[int, ...], n_factors: int) -> Batch:
        """The global batch: identical on every rank (same generator, same draws)."""
        size, generator = self.config.batch_size, self.generator
        device = generator.device
        index = torch.randint(n_data, (size,), generator=generator, device=device)
        t = training_times(self.sde, torch.rand(size, generator=generator, device=device), self.config.time_sampling)
        noise = torch.randn((size,) + tuple(image_shape), generator=generator, device=device)
        keep = subset_keep_mask(
            size, n_factors, self.config.keep_none, self.config.keep_all, self.config.keep_single, generator
        )
        return Batch(index, t, noise, keep)

    def update(self, x0: torch.Tensor, values: torch.Tensor, batch: Batch) -> torch.Tensor:
        """One update on this rank's shard of the global batch. The global mean (loss,
        gradient norm) stays on the device; the caller reads it (``PendingLosses``) when it needs it."""
        inputs = self.step_inputs(x0, values, batch)
        self.set_learning_rate()
        loss = self.compute(inputs, self.ema.next_weight())
        self.advance_step()
        return self.world.mean(loss.detach())

    def step_inputs(self, x0: torch.Tensor, values: torch.Tensor, batch: Batch) -> StepInputs:
        """This rank's shard of the batch on the device, images and noise channels_last."""
        shard, to = self.world.shard, (lambda v: v.to(self.device, non_blocking=True))
        last = torch.channels_last
        return StepInputs(
            to(shard(x0)).contiguous(memory_format=last),
            to(shard(values)),
            to(shard(batch.keep)),
            to(shard(batch.t)),
            to(shard(batch.noise)).contiguous(memory_format=last),
        )

    def set_learning_rate(self) -> None:
        rate = learning_rate_at(self.step_index, self.config)
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(rate)  # a kernel, no sync: what a CUDA graph's AdamW reads
            else:
                group["lr"] = rate

    def compute(self, inputs: StepInputs, ema_weight: float | torch.Tensor) -> torch.Tensor:
        """Forward, backward, clipping, AdamW and EMA: the work a CUDA graph captures.
        Returns (loss, gradient norm before clipping) on the device: both are checked when read."""
        with self.autocast:
            loss = denoising_loss(self.network, self.sde, *inputs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)  # foreach on CUDA
        self.optimizer.step()
        self.ema.apply(ema_weight)
        return torch.stack([loss.detach().float(), norm.float()])

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Everything a resumed run needs (weights, EMA, optimizer, random states, step, loss
        history), as CPU tensors and string metadata: resume.py writes them to one file."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in self.ema.shadow.items()}
        optimizer = self.optimizer.state_dict()
        for index, state in optimizer["state"].items():
            for key, value in state.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["rng.batch"] = self.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        tensors["history"] = torch.tensor(self.history, dtype=torch.float64).reshape(-1, 3)
        metadata = {
            "step": str(self.step_index),
            "ema_updates": str(self.ema.updates),
            "param_groups": canonical_json([_plain(group) for group in optimizer["param_groups"]]),
        }
        return tensors, metadata

    def restore(self, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        """Back to the step that :meth:`state` saw."""
        self.model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        for key in self.ema.shadow:
            self.ema.shadow[key].copy_(tensors[f"ema.{key}"])
        self.ema.updates = int(metadata["ema_updates"])
        self._restore_optimizer(tensors, json.loads(metadata["param_groups"]))
        self.generator.set_state(tensors["rng.batch"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        self.history = [(int(step), float(loss), float(rate)) for step, loss, rate in tensors["history"].tolist()]
        self.step_index = int(metadata["step"])

    def _restore_optimizer(self, tensors: dict[str, torch.Tensor], param_groups: list[dict]) -> None:
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": param_groups})
        built = self.optimizer.defaults  # as this trainer was built, not as the saved run was
        for group in self.optimizer.param_groups:
            group["capturable"] = built["capturable"]
            if isinstance(built["lr"], torch.Tensor):  # the graphed step reads its rate on the device
                group["lr"] = torch.tensor(float(group["lr"]), device=built["lr"].device)


def _plain(group: dict) -> dict:
    """An optimizer param group as JSON can hold it: a device-tensor setting (the CUDA-graph
    step's learning rate) as its float; ``restore`` makes it a tensor again."""
    return {key: float(value) if isinstance(value, torch.Tensor) else value for key, value in group.items()}


class PendingLosses:
    """Losses still on the device, read all at once (one host sync) and checked there: a
    non-finite one stops the run before anything is made from its weights."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.pending: list[tuple[int, torch.Tensor, float]] = []
        self.last_finite: tuple[int, float] | None = None

    def add(self, loss: torch.Tensor) -> None:
        step = self.trainer.step_index - 1  # the update that made it
        self.pending.append((step, loss, learning_rate_at(step, self.trainer.config)))

    def read(self) -> float | None:
        """Record the pending losses in the trainer's history; the last one, if any."""
        if not self.pending:
            return None
        read = torch.stack([loss for _, loss, _ in self.pending]).tolist()
        for (step, _, rate), (value, norm) in zip(self.pending, read):
            if not math.isfinite(value):
                raise TrainingDiverged("training", step + 1, value, self.last_finite)
            if not math.isfinite(norm):
                raise TrainingDiverged("training", step + 1, norm, self.last_finite, quantity="gradient norm")
            self.trainer.history.append((step, value, rate))
            self.last_finite = (step + 1, value)
        self.pending.clear()
        return read[-1][0]


def keep_on_device(source: ImageRows, device: torch.device, free_bytes: int | None = None) -> bool:
    """Keep the data set on ``device`` when it takes at most half of the free memory
    there (``free_bytes``, default: measured on CUDA, unbounded elsewhere); otherwise
    say so in one line, and each batch is gathered from host memory (docs/gpu.md)."""
    budget = half_free_memory(device) if free_bytes is None else free_bytes // 2
    source.keep_on(device, max_bytes=budget, rows_per_read=ROWS_PER_READ)
    if source.cache is None:
        log.warning(
            "the data set (%.2f GiB) exceeds half the free memory of %s (%.2f GiB): batches are "
            "gathered from host memory instead (docs/gpu.md)",
            source.read_bytes / 2**30,
            device,
            2 * budget / 2**30,
        )
    return source.cache is not None


def train(
    trainer: Trainer,
    images: np.ndarray,
    factor_values: np.ndarray,
    rows: np.ndarray | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    on_resume_point: Callable[[int], None] | None = None,
    on_log: Callable[[int, float], None] | None = None,
    resident: bool | None = None,
) -> None:
    """Run ``trainer`` from its current step to ``config.steps`` on ``images[rows]``.

    ``images`` stays as stored (possibly a memory-mapped uint8 array larger than memory).
    ``resident`` (default: on CUDA) keeps the rows on the trainer's device and reads the
    losses every ``log_every`` steps and before every checkpoint; otherwise each batch is
    gathered in file order on the CPU and each loss is read at once.

    ``on_checkpoint(step)`` is called at the log-spaced steps (after the update of that
    step), ``on_resume_point(step)`` every ``resume_every`` steps, ``on_log`` every ``log_every``.
    """
    config, device = trainer.config, trainer.device
    source = ImageRows(images, rows)
    values = torch.tensor(np.asarray(factor_values)[source.rows], dtype=torch.float32)
    resident = device.type == "cuda" if resident is None else resident
    on_device = resident and keep_on_device(source, device)
    values = values.to(trainer.generator.device)
    snapshots = set(checkpoint_steps(config.steps, config.checkpoints, config.warmup_steps))
    losses = PendingLosses(trainer)
    update = trainer.step_function()
    trainer.model.train()
    with Progress(
        config.steps, "train", unit="step", initial=trainer.step_index, disable=not trainer.world.is_main
    ) as progress:
        started, done_at_start = time.perf_counter(), trainer.step_index
        for _ in range(trainer.step_index, config.steps):
            batch = trainer.draw(len(source), source.image_shape, values.shape[1])
            x0 = source.gather(batch.index, device) if on_device else source.gather(batch.index.cpu(), "cpu")
            losses.add(update(x0, values[batch.index], batch))
            step = trainer.step_index  # steps completed
            logged = step % config.log_every == 0 or step == config.steps
            resume_point = bool(on_resume_point and config.resume_every and step % config.resume_every == 0)
            if not resident or logged or step in snapshots or resume_point:
                loss = losses.read()  # before any snapshot: nothing made from diverged weights is written
            if logged:
                rate = (step - done_at_start) * config.batch_size / (time.perf_counter() - started)
                progress.update(step - progress.done, loss=f"{loss:.4f}", images_per_s=f"{rate:.0f}")
                if on_log:
                    on_log(step, loss)
            if on_checkpoint and step in snapshots:
                on_checkpoint(step)
            if resume_point and step < config.steps:
                on_resume_point(step)
    trainer.model.eval()
