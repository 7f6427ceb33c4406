"""Training the conditional score network: epsilon-prediction on an SDE with per-factor
condition dropout, so one network gives conditional and unconditional scores.

AdamW with linear warm-up then cosine decay, gradient clipping, an EMA of the weights
(the weights that are saved and analysed), channels_last memory format (faster convolutions
on CPUs and GPUs alike), bf16 autocast on CUDA,
optional torch.compile, data parallelism through torchrun (distributed.py), and a
seeded generator that draws every batch, time and noise, so a run resumed from its
rolling checkpoint (resume.py) continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .conditioning import subset_keep_mask
from .distributed import World
from .errors import InputError, TrainingDiverged
from .image_rows import ImageRows
from .nets.unet import ScoreUNet
from .schedule import learning_rate_at, training_times
from .sde import SDE


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
    checkpoints: int = 8  # log-spaced EMA snapshots kept along training
    resume_every: int = 500  # rolling resume checkpoint every n steps (0: never)
    precision: str = "fp32"  # or "bf16" (autocast, CUDA only)
    compile: bool = False
    time_sampling: str = "t"  # or "log_snr": noise levels uniform in log-SNR (training_times)
    log_every: int = 10


def checkpoint_steps(steps: int, count: int) -> list[int]:
    """``count`` (or fewer, once rounded) log-spaced steps in 1..steps, the last always included."""
    if count <= 0:
        return [steps]
    return sorted(set(np.geomspace(1, steps, count).round().astype(int).tolist()) | {steps})


class ExponentialMovingAverage:
    """EMA of the weights, with the usual warm-up min(decay, (1 + n) / (10 + n))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {name: value.detach().clone() for name, value in model.state_dict().items()}
        self._floating = [name for name, value in self.shadow.items() if value.dtype.is_floating_point]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        # One fused kernel for all tensors rather than one launch per tensor.
        torch._foreach_lerp_(
            [self.shadow[n] for n in self._floating], [current[n].detach() for n in self._floating], 1.0 - decay
        )
        for name, value in current.items():
            if not value.dtype.is_floating_point:
                self.shadow[name].copy_(value)


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
        self.model.to(device)
        self.model.to(memory_format=torch.channels_last)
        self.network: torch.nn.Module = self.model
        if self.world.active:
            self.network = DistributedDataParallel(self.model, device_ids=[device.index] if cuda else None)
        if config.compile:
            self.network = torch.compile(self.network, dynamic=False)  # fixed batch shapes: no recompiles
        self.autocast = torch.autocast(
            device_type="cuda", dtype=torch.bfloat16, enabled=cuda and config.precision == "bf16"
        )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.learning_rate, weight_decay=0.0, fused=cuda
        )
        self.ema = ExponentialMovingAverage(self.model, config.ema_decay)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step_index = 0
        self.history: list[tuple[int, float, float]] = []

    def draw(self, n_data: int, image_shape: tuple[int, ...], n_factors: int) -> Batch:
        """The global batch: identical on every rank (same generator, same draws)."""
        size, generator = self.config.batch_size, self.generator
        index = torch.randint(n_data, (size,), generator=generator)
        t = training_times(self.sde, torch.rand(size, generator=generator), self.config.time_sampling)
        noise = torch.randn((size,) + tuple(image_shape), generator=generator)
        keep = subset_keep_mask(
            size, n_factors, self.config.keep_none, self.config.keep_all, self.config.keep_single, generator
        )
        return Batch(index, t, noise, keep)

    def step(self, x0: torch.Tensor, values: torch.Tensor, batch: Batch) -> float:
        """One update on this rank's shard of the global batch; returns the global mean loss."""
        shard, to = self.world.shard, (lambda v: v.to(self.device, non_blocking=True))
        x0, values = to(shard(x0)), to(shard(values))
        t, noise, keep = to(shard(batch.t)), to(shard(batch.noise)), to(shard(batch.keep))
        x0, noise = (
            x0.contiguous(memory_format=torch.channels_last),
            noise.contiguous(memory_format=torch.channels_last),
        )
        rate = learning_rate_at(self.step_index, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        with self.autocast:
            loss = denoising_loss(self.network, self.sde, x0, values, keep, t, noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.ema.update(self.model)
        value = float(self.world.mean(loss.detach()))
        self.history.append((self.step_index, value, rate))
        self.step_index += 1
        return value


def train(
    trainer: Trainer,
    images: np.ndarray,
    factor_values: np.ndarray,
    rows: np.ndarray | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    on_resume_point: Callable[[int], None] | None = None,
    on_log: Callable[[int, float], None] | None = None,
) -> None:
    """Run ``trainer`` from its current step to ``config.steps`` on ``images[rows]``.

    ``images`` stays as stored (possibly a memory-mapped uint8 array larger than memory):
    each batch is gathered in file order and mapped to [-1, 1] on the CPU (image_rows.ImageRows).

    ``on_checkpoint(step)`` is called at the log-spaced steps (after the update of that
    step), ``on_resume_point(step)`` every ``resume_every`` steps, ``on_log`` every ``log_every``.
    """
    config = trainer.config
    source = ImageRows(images, rows)
    values = torch.tensor(np.asarray(factor_values)[source.rows], dtype=torch.float32)
    snapshots = set(checkpoint_steps(config.steps, config.checkpoints))
    trainer.model.train()
    progress = tqdm(
        range(trainer.step_index, config.steps),
        desc="train",
        mininterval=2.0,
        disable=not trainer.world.is_main,
        initial=trainer.step_index,
        total=config.steps,
    )
    started, done_at_start = time.perf_counter(), trainer.step_index
    last_finite: tuple[int, float] | None = None
    for _ in progress:
        batch = trainer.draw(len(source), source.image_shape, values.shape[1])
        loss = trainer.step(source.gather(batch.index, "cpu"), values[batch.index], batch)
        step = trainer.step_index  # steps completed
        if not math.isfinite(loss):  # before any snapshot: nothing made from these weights is written
            raise TrainingDiverged("training", step, loss, last_finite)
        last_finite = (step, loss)
        if step % config.log_every == 0 or step == config.steps:
            rate = (step - done_at_start) * config.batch_size / (time.perf_counter() - started)
            progress.set_postfix(loss=f"{loss:.4f}", images_per_s=f"{rate:.0f}")
            if on_log:
                on_log(step, loss)
        if on_checkpoint and step in snapshots:
            on_checkpoint(step)
        if on_resume_point and config.resume_every and step % config.resume_every == 0 and step < config.steps:
            on_resume_point(step)
    trainer.model.eval()
