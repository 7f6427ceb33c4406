"""Training the noise classifier: AdamW on the cross-entropy of every factor at once,
at times drawn as schedule.training_times spreads them.

The architecture and the network are in classifier. The method in full: docs/science.md,
"The noise-conditional classifier bound".
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..core.devices import select_device
from ..core.errors import TrainingDiverged
from ..core.image_rows import ImageRows
from ..core.progress import Progress
from ..diffusion.schedule import TIME_SAMPLINGS, learning_rate_at, training_times
from ..diffusion.sde import SDE
from .classifier import (
    ClassifierError,
    NoiseClassifier,
    build_model,
    check_factors,
    check_matches,
    device_of,
    device_rows,
    labels_of,
)

if TYPE_CHECKING:
    from ..datasets.base import Dataset


def _check_time_sampling(sampling: str) -> None:
    if sampling not in TIME_SAMPLINGS:
        raise ClassifierError(f"unknown time sampling {sampling!r}; allowed: {', '.join(TIME_SAMPLINGS)}")


def draw_times(n: int, sde: SDE, t_min: float, t_max: float, sampling: str, generator: torch.Generator) -> torch.Tensor:
    """``n`` training times (float32, CPU) in [t_min, t_max], drawn in float64 as
    schedule.training_times spreads them (uniform in log-SNR, in t, or mixed)."""
    _check_time_sampling(sampling)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return training_times(sde, u, sampling, t_min, t_max).float()


@dataclasses.dataclass
class ClassifierConfig:
    steps: int
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 50
    seed: int = 0
    time_sampling: str = "log_snr"  # or "t", "mixed" (schedule.TIME_SAMPLINGS)
    grad_clip: float = 1.0


def stop_if_diverged(losses: torch.Tensor, start: int, stop: int) -> None:
    """TrainingDiverged at the first step in [start, stop) (0-based rows of ``losses``, one
    column per factor) whose loss is not finite; the weights are written only after the
    last step, so none from it exist."""
    total = losses[start:stop].sum(1)
    bad = (~torch.isfinite(total)).nonzero()
    if len(bad):
        first = start + int(bad[0])
        before = (first, float(losses[first - 1].sum())) if first else None  # step numbers are 1-based
        raise TrainingDiverged("the noise classifier's training", first + 1, float(total[first - start]), before)


def train_classifier(
    dataset: Dataset,
    architecture: dict,
    config: ClassifierConfig,
    rows: np.ndarray | None = None,
    device: torch.device | str | None = None,
) -> tuple[NoiseClassifier, pd.DataFrame]:
    """Train a classifier of ``architecture`` on ``dataset``'s ``rows`` (default: its training rows).

    The SDE and the time range are the architecture's. Returns the model (eval mode, on
    ``device``, default CUDA when available) and its history: one row per step with
    ``step`` (1-based), ``learning_rate``, ``loss`` (sum over factors of the batch-mean
    cross-entropy, nats) and ``loss_<factor>`` per factor.
    """
    _check_config(config)
    check_factors(dataset.factor_table)
    check_matches(architecture, dataset)
    device = torch.device(device) if device is not None else select_device()
    rows = dataset.train_rows() if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        raise ClassifierError("no rows to train the classifier on")
    labels = torch.from_numpy(labels_of(dataset)[rows]).to(device)
    images = device_rows(dataset.images, rows, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(architecture)
    model.to(device).train()
    losses, rates = _fit(model, images, labels, config)
    model.eval()
    return model, _history(model, losses, rates)


def _check_config(config: ClassifierConfig) -> None:
    _check_time_sampling(config.time_sampling)
    if config.steps < 1 or config.batch_size < 1:
        raise ClassifierError(f"steps and batch_size must be positive, got {config.steps}, {config.batch_size}")


def _fit(
    model: NoiseClassifier, images: ImageRows, labels: torch.Tensor, config: ClassifierConfig
) -> tuple[torch.Tensor, list[float]]:
    """``config.steps`` AdamW steps on batches of ``images`` (their ``labels`` (rows, K) on the
    model's device); returns the per-factor loss of each step (steps, K) and its learning rate."""
    device = device_of(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    losses = torch.zeros((config.steps, len(model.factors)), dtype=torch.float32, device=device)
    rates = []
    check_every = 1 if device.type == "cpu" else 50  # on a GPU, reading the loss waits for the device
    checked = 0  # steps whose losses were checked
    with Progress(config.steps, "train classifier", "step") as progress:
        for step in range(config.steps):
            positions = torch.randint(len(images), (config.batch_size,), generator=generator)
            per_factor = _batch_loss(model, images, labels, positions, config, generator)
            rate = learning_rate_at(step, config)
            _update(model, optimizer, per_factor.sum(), rate, config.grad_clip)
            losses[step] = per_factor.detach()
            rates.append(rate)
            postfix = {}  # the loss is read where it is checked: elsewhere reading it would wait for the device
            if (step + 1) % check_every == 0 or step + 1 == config.steps:
                stop_if_diverged(losses, checked, step + 1)
                checked = step + 1
                postfix = {"loss": f"{float(losses[step].sum()):.4f}"}
            progress.update(1, **postfix)
    return losses, rates


def _batch_loss(
    model: NoiseClassifier,
    images: ImageRows,
    labels: torch.Tensor,
    positions: torch.Tensor,
    config: ClassifierConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """The batch-mean cross-entropy per factor (K,) of the rows at ``positions``, noised at
    times and with noise drawn from ``generator`` (in that order)."""
    device, sde = device_of(model), model.sde
    t = draw_times(config.batch_size, sde, model.t_min, model.t_max, config.time_sampling, generator)
    noise = torch.randn((config.batch_size,) + images.image_shape, generator=generator)
    t, noise = t.to(device), noise.to(device)
    x_t = sde.marginal(images.gather(positions, device), t, noise)
    logits = model(x_t, t)
    target = labels[positions.to(device)]
    return torch.stack([F.cross_entropy(z, target[:, k]) for k, z in enumerate(logits)])


def _update(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, rate: float, clip: float) -> None:
    """One optimizer step on ``loss`` at learning rate ``rate``, gradients clipped to norm ``clip`` (0: not)."""
    for group in optimizer.param_groups:
        group["lr"] = rate
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()


def _history(model: NoiseClassifier, losses: torch.Tensor, rates: list[float]) -> pd.DataFrame:
    per_step = losses.cpu().double().numpy()
    history = pd.DataFrame({"step": np.arange(1, len(rates) + 1), "learning_rate": rates, "loss": per_step.sum(1)})
    for k, factor in enumerate(model.factors):
        history[f"loss_{factor.name}"] = per_step[:, k]
    return history
