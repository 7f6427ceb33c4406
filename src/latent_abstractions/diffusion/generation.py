"""Drawing images from a score network for requested factors, with classifier-free
guidance: eps = eps(x | none) + w (eps(x | kept) - eps(x | none)); w = 1 is the plain
conditional model, w = 0 the unconditional one."""

from __future__ import annotations

import torch

from ..core.errors import InputError
from .samplers import SAMPLERS, gaussian_noise
from .sde import SDE, time_grid


def guided_eps(model: torch.nn.Module, values: torch.Tensor, keep: torch.Tensor, guidance: float = 1.0):
    """The sampler's ``eps_fn`` for a network and requested factor values (n, F), keeping
    the factors flagged in ``keep`` (n, F) bool."""
    if guidance < 0:
        raise InputError(f"guidance scale {guidance} must be >= 0")
    nothing = torch.zeros_like(keep)

    def eps_fn(x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        if guidance == 1.0 or not keep.any():
            return model(x, t, values, keep)[0]
        if guidance == 0.0:
            return model(x, t, values, nothing)[0]
        both, _ = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([values, values]), torch.cat([keep, nothing]))
        conditional, unconditional = both.chunk(2)
        return unconditional + guidance * (conditional - unconditional)

    return eps_fn


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    sde: SDE,
    values: torch.Tensor,
    keep: torch.Tensor,
    image_shape: tuple,
    sampler: str,
    steps: int,
    t_end: float,
    seed: int,
    guidance: float = 1.0,
) -> torch.Tensor:
    """Final images (n, C, H, W) for requested ``values``, from one seeded prior draw."""
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}; allowed: {', '.join(sorted(SAMPLERS))}")
    generator = torch.Generator().manual_seed(seed)
    prior = sde.prior_sample((len(values), *image_shape), generator).to(values.device)
    times = time_grid(sde.T, t_end, steps, sde=sde)
    return SAMPLERS[sampler](guided_eps(model, values, keep, guidance), sde, prior, times, gaussian_noise(generator))
