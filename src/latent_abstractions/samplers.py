"""Reverse-time samplers as plain functions with one signature and a per-step callback
(after k-diffusion's sampling.py); the callback is where trajectories are recorded.

``eps_fn(x, t, step)`` returns the predicted noise at state ``x`` and time ``t``
(a per-sample vector); ``step`` lets a caller decide at which steps to do more
(record activations) without a second forward pass.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from .sde import VPSDE, expand_like

EpsFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


class StepCallback(Protocol):
    def __call__(self, step: int, t: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> None: ...


@torch.no_grad()
def reverse_sde_euler_maruyama(eps_fn: EpsFn, sde: VPSDE, x: torch.Tensor, times: torch.Tensor,
                               generator: torch.Generator | None = None,
                               callback: StepCallback | None = None) -> torch.Tensor:
    """Integrate the reverse SDE dX = [f - g^2 score] dt + g dW-bar along the decreasing ``times``.

    ``times`` has steps + 1 entries from T down to t_end. The network is evaluated
    at every entry, the last one included, and the result is Tweedie's denoised
    estimate at t_end. The callback sees (step, t, x_t, eps) at steps 0..len(times)-1.
    """
    batch = x.shape[0]
    for step in range(len(times)):
        t = torch.full((batch,), float(times[step]), device=x.device)
        eps = eps_fn(x, t, step)
        if callback is not None:
            callback(step, t, x, eps)
        if step == len(times) - 1:
            return sde.denoise(x, eps, t)
        h = float(times[step] - times[step + 1])
        score = sde.score_from_eps(eps, t)
        g = expand_like(sde.diffusion(t), x)
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        x = x - (sde.drift(x, t) - g**2 * score) * h + g * (h**0.5) * noise
    raise ValueError("times must hold at least one entry")
