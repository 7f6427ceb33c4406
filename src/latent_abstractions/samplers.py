"""Reverse-time samplers as plain functions with one signature and a per-step callback
(after k-diffusion's sampling.py); the callback is where trajectories are recorded.

``eps_fn(x, t, step)`` returns the predicted noise at state ``x`` and time ``t``
(a per-sample vector); ``step`` lets a caller decide at which steps to do more
(record activations) without a second forward pass.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from .sde import SDE, expand_like

EpsFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


class StepCallback(Protocol):
    def __call__(self, step: int, t: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> None: ...


@torch.no_grad()
def reverse_sde_euler_maruyama(eps_fn: EpsFn, sde: SDE, x: torch.Tensor, times: torch.Tensor,
                               generator: torch.Generator | None = None,
                               callback: StepCallback | None = None) -> torch.Tensor:
    """Integrate the reverse SDE dX = [f - g^2 score] dt + g dW-bar along the decreasing ``times``."""
    return _integrate(eps_fn, sde, x, times, generator, callback, stochastic=True)


@torch.no_grad()
def probability_flow_euler(eps_fn: EpsFn, sde: SDE, x: torch.Tensor, times: torch.Tensor,
                           generator: torch.Generator | None = None,
                           callback: StepCallback | None = None) -> torch.Tensor:
    """Integrate the probability-flow ODE dX = [f - 1/2 g^2 score] dt (deterministic given X_T)."""
    return _integrate(eps_fn, sde, x, times, generator, callback, stochastic=False)


def _integrate(eps_fn: EpsFn, sde: SDE, x: torch.Tensor, times: torch.Tensor, generator: torch.Generator | None,
               callback: StepCallback | None, stochastic: bool) -> torch.Tensor:
    """Euler(-Maruyama) steps from times[0] down to times[-1].

    ``times`` has steps + 1 entries. The network is evaluated at every entry, the last
    one included, and the result is Tweedie's denoised estimate at times[-1]. The
    callback sees (step, t, x_t, eps) at steps 0..len(times)-1.
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
        if stochastic:
            noise = torch.randn(x.shape, generator=generator).to(x.device)
            x = x - sde.reverse_drift(x, t, score) * h + expand_like(sde.diffusion(t), x) * (h**0.5) * noise
        else:
            x = x - sde.probability_flow_drift(x, t, score) * h
    raise ValueError("times must hold at least one entry")


SAMPLERS = {"sde": reverse_sde_euler_maruyama, "ode": probability_flow_euler}
