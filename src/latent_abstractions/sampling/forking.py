"""Trajectories continued from an intermediate state: study 1's forks and the
forward-backward experiment of Sclocchi et al. (2024).

- Forks: M parent trajectories, each recorded at the fork times tau; from each X_tau,
  K branches continue with fresh noise down to t_end (unconditionally by default), so
  that what the branches' final images agree on was decided by X_tau.
- Forward-backward: a data image x_0 is noised to time t, X_t = alpha_t x_0 + sigma_t z,
  and regenerated from there; which of its factors survive says what the noise at t
  left of it.

Every continuation has its own noise stream (recording.stream_seed: the run's seed, the
fork or start step, the parent or source image, the branch or repeat), so the stores
are the same whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..core.factors import Factor
from ..diffusion.counter_noise import CounterNoise
from ..diffusion.samplers import SAMPLERS
from ..diffusion.sde import SDE
from .recording import TrajectoryRecorder, condition_grid


def parent_conditions(factors: Sequence[Factor], names: Sequence[str], count: int, seed: int) -> dict[str, np.ndarray]:
    """``count`` requested factor combinations, uniform over the named factors' values
    (a continuous factor's value, a categorical factor's index)."""
    rng = np.random.default_rng(seed)
    grid = condition_grid([f for f in factors if f.name in names])
    return {name: values[rng.integers(0, len(values), count)] for name, values in grid.items()}


def source_rows(split: np.ndarray, per_split: int, seed: int) -> np.ndarray:
    """Up to ``per_split`` rows of each split (train, test), a seeded draw, in row order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for name in ("train", "test"):
        rows = np.flatnonzero(split == name)
        if len(rows):
            chosen.append(rng.choice(rows, min(per_split, len(rows)), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def batches(count: int, size: int) -> list[np.ndarray]:
    return [np.arange(start, min(count, start + size)) for start in range(0, count, size)]


@torch.no_grad()
def run(
    model,
    sde: SDE,
    sampler: str,
    times: torch.Tensor,
    values: torch.Tensor,
    keep: torch.Tensor,
    seeds: Sequence[int],
    *,
    x: torch.Tensor | None = None,
    images: torch.Tensor | None = None,
    image_shape: Sequence[int] | None = None,
    guidance: float = 1.0,
    block: int = 0,
    record_steps: Sequence[int] = (),
    noise_type: Callable[[Sequence[int], torch.device], Callable] = CounterNoise,
) -> tuple[torch.Tensor, TrajectoryRecorder]:
    """Sample one trajectory per row of ``values`` down ``times`` and return the sampler's
    output and the recorder (holding the states at ``record_steps``). The start, X at
    times[0], is ``x``; or, given x_0 ``images``, alpha x_0 + sigma z; or else a prior draw
    of ``image_shape``; z and the prior draw are each row's first draw from its stream
    (``seeds``, one per row, made into a sampler's ``noise`` by ``noise_type``), the
    sampler's noise the draws after."""
    device = values.device
    noise = noise_type(seeds, device)
    if x is None and images is not None:
        t0 = torch.full((len(images),), float(times[0]), device=device)
        x = sde.marginal(images.to(device).float(), t0, noise(tuple(images.shape)))
    elif x is None:
        x = sde.prior_std() * noise((len(seeds), *image_shape))
    recorder = TrajectoryRecorder(
        model, sde, values, record_steps, [], keep=keep, guidance=guidance, block=block, state_only=True
    )
    final = SAMPLERS[sampler](recorder, sde, x.to(device), times, noise=noise)
    return final, recorder
