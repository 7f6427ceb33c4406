"""Training the conditional score network: epsilon-prediction on a VP SDE with
per-factor condition dropout, so one network gives conditional and unconditional scores.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from tqdm import tqdm

from .conditioning import dropout_mask
from .nets.unet import ScoreUNet
from .sde import VPSDE

T_MIN = 1e-3  # smallest training time: the eps-target is ill-posed as sigma_t -> 0


@dataclasses.dataclass
class TrainConfig:
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    drop_each: float
    drop_all: float
    ema_decay: float
    seed: int


def learning_rate_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.45 * (1.0 + math.cos(math.pi * progress)))


class ExponentialMovingAverage:
    """EMA of the weights, with the usual warm-up min(decay, (1 + n) / (10 + n))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {name: value.detach().clone() for name, value in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                self.shadow[name].lerp_(value.detach(), 1.0 - decay)
            else:
                self.shadow[name].copy_(value)

    def copy_to(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.shadow)


def denoising_loss(model: ScoreUNet, sde: VPSDE, x0: torch.Tensor, factor_values: torch.Tensor,
                   keep: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Epsilon-matching loss (Ho et al. 2020, eq. 14; Song et al. 2021, eq. 7 with lambda = sigma^2)."""
    x_t = sde.marginal(x0, t, noise)
    predicted, _ = model(x_t, t, factor_values, keep)
    return (predicted - noise).pow(2).mean()


def train(model: ScoreUNet, sde: VPSDE, images: np.ndarray, factor_values: np.ndarray,
          config: TrainConfig, device: torch.device) -> list[dict]:
    """Train in place, leaving the EMA weights in ``model``; return one record per step."""
    generator = torch.Generator().manual_seed(config.seed)
    data = torch.tensor(np.asarray(images), dtype=torch.float32)
    values = torch.tensor(np.asarray(factor_values), dtype=torch.float32)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    ema = ExponentialMovingAverage(model, config.ema_decay)
    history = []
    progress = tqdm(range(config.steps), desc="train", mininterval=2.0)
    for step in progress:
        index = torch.randint(len(data), (config.batch_size,), generator=generator)
        t = T_MIN + (1.0 - T_MIN) * torch.rand(config.batch_size, generator=generator)
        noise = torch.randn((config.batch_size,) + tuple(data.shape[1:]), generator=generator)
        keep = dropout_mask(config.batch_size, values.shape[1], config.drop_each, config.drop_all, generator)
        rate = learning_rate_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = rate
        loss = denoising_loss(model, sde, data[index].to(device), values[index].to(device), keep.to(device),
                              t.to(device), noise.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        ema.update(model)
        history.append({"step": step, "loss": loss.item(), "learning_rate": rate})
        if step % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.4f}")
    ema.copy_to(model)
    model.eval()
    return history
