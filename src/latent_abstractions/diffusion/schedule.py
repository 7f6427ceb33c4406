"""The schedules both trainers use (score network and noise classifier): the learning
rate over the steps, and the noise levels a batch is trained at."""

from __future__ import annotations

import math

import torch

from ..core.errors import InputError
from .sde import SDE, T_MIN

TIME_SAMPLINGS = ("t", "log_snr", "mixed")


def learning_rate_at(step: int, config) -> float:
    """Linear warm-up over ``config.warmup_steps``, then cosine decay to a tenth of
    ``config.learning_rate`` at ``config.steps``."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.45 * (1.0 + math.cos(math.pi * progress)))


def training_times(
    sde: SDE, uniform: torch.Tensor, sampling: str, t_min: float = T_MIN, t_max: float = 1.0
) -> torch.Tensor:
    """Noise levels in [t_min, t_max] from uniform draws (in their dtype): uniform in t,
    uniform in log-SNR, or ``mixed``, an even mixture of the two (draws below 1/2 go
    uniform in t, the others uniform in log-SNR, each rescaled to [0, 1)). A grid in t
    leaves the high-SNR end (t < 0.1, half the log-SNR range of a VP SDE) with a tenth of
    the steps; the information integral is uniform in log-SNR, but the low-SNR end, where
    the factors are decided, then gets fewer steps: the mixture keeps most of both."""
    if sampling not in TIME_SAMPLINGS:
        raise InputError(f"time_sampling {sampling!r}: must be one of {', '.join(TIME_SAMPLINGS)}")
    if sampling == "mixed":
        return torch.where(
            uniform < 0.5,
            training_times(sde, 2 * uniform, "t", t_min, t_max),
            training_times(sde, (2 * uniform - 1).clamp_min(0.0), "log_snr", t_min, t_max),
        )
    if sampling == "t":
        return t_min + (t_max - t_min) * uniform
    ends = sde.log_snr(torch.tensor([t_max, t_min], dtype=uniform.dtype))
    return sde.time_of_log_snr(ends[0] + (ends[1] - ends[0]) * uniform).clamp(t_min, t_max)
