"""Reverse-time samplers as plain functions with one signature (after k-diffusion's
sampling.py): ``sampler(eps_fn, sde, x, times, noise=None, callback=None)``. Trajectories
are recorded by the ``eps_fn`` (recording.TrajectoryRecorder sees every evaluation); the
``callback(step, t, x, eps)`` is for watching a run step by step. All the randomness
comes from ``noise(shape)`` (default: the global torch generator).

The method in full: docs/science.md, "The samplers".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from .sde import SDE, expand_like

EpsFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
NoiseFn = Callable[[tuple[int, ...]], torch.Tensor]  # standard Gaussian noise of a shape
AUXILIARY = -1
LANGEVIN_SNR = 0.16  # Song et al.'s value for their VP/VE image models


class StepCallback(Protocol):
    def __call__(self, step: int, t: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> None: ...


# One update: (x, eps at x, t, t_next) -> x at t_next. ``evaluate(x, t)`` gives eps for extra stages.
Update = Callable[..., torch.Tensor]


def _run(
    update: Update, eps_fn: EpsFn, sde: SDE, x: torch.Tensor, times: torch.Tensor, callback: StepCallback | None
) -> torch.Tensor:
    if len(times) < 1:
        raise ValueError("times must hold at least one entry")
    batch = x.shape[0]

    def at(time) -> torch.Tensor:
        return torch.full((batch,), float(time), device=x.device)

    def evaluate(state: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return eps_fn(state, time, AUXILIARY)

    for step in range(len(times)):
        t = at(times[step])
        eps = eps_fn(x, t, step)
        if callback is not None:
            callback(step, t, x, eps)
        if step == len(times) - 1:
            return sde.denoise(x, eps, t)
        x = update(x, eps, t, at(times[step + 1]), evaluate=evaluate, last=step == len(times) - 2)
    raise AssertionError("unreachable")


def gaussian_noise(generator: torch.Generator | None = None) -> NoiseFn:
    """Noise from one torch generator (None: the global one), drawn on the CPU."""
    return lambda shape: torch.randn(shape, generator=generator)


def _noise(x: torch.Tensor, noise: NoiseFn | None) -> torch.Tensor:
    return (noise or gaussian_noise())(tuple(x.shape)).to(x.device)


def _euler_maruyama(sde: SDE, noise, x, eps, t, t_next) -> torch.Tensor:
    h = expand_like(t - t_next, x)
    drift = sde.reverse_drift(x, t, sde.score_from_eps(eps, t))
    return x - drift * h + expand_like(sde.diffusion(t), x) * h.sqrt() * _noise(x, noise)


def _ode_slope(sde: SDE, x, eps, t) -> torch.Tensor:
    """dx/dt of the probability-flow ODE."""
    return sde.probability_flow_drift(x, t, sde.score_from_eps(eps, t))


@torch.no_grad()
def reverse_sde_euler_maruyama(
    eps_fn: EpsFn,
    sde: SDE,
    x: torch.Tensor,
    times: torch.Tensor,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Integrate the reverse SDE dX = [f - g^2 score] dt + g dW-bar along the decreasing ``times``."""

    def update(x, eps, t, t_next, **_):
        return _euler_maruyama(sde, noise, x, eps, t, t_next)

    return _run(update, eps_fn, sde, x, times, callback)


@torch.no_grad()
def predictor_corrector(
    eps_fn: EpsFn,
    sde: SDE,
    x: torch.Tensor,
    times: torch.Tensor,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
    snr: float = LANGEVIN_SNR,
) -> torch.Tensor:
    """Euler-Maruyama predictor, then one Langevin corrector step at the new time."""

    def update(x, eps, t, t_next, evaluate, **_):
        x = _euler_maruyama(sde, noise, x, eps, t, t_next)
        score = sde.score_from_eps(evaluate(x, t_next), t_next)
        step_size = expand_like(2.0 * (snr * sde.sigma(t_next)) ** 2, x)
        return x + step_size * score + (2.0 * step_size).sqrt() * _noise(x, noise)

    return _run(update, eps_fn, sde, x, times, callback)


@torch.no_grad()
def probability_flow_euler(
    eps_fn: EpsFn,
    sde: SDE,
    x: torch.Tensor,
    times: torch.Tensor,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Integrate the probability-flow ODE dX = [f - 1/2 g^2 score] dt (deterministic given X_T)."""

    def update(x, eps, t, t_next, **_):
        return x - _ode_slope(sde, x, eps, t) * expand_like(t - t_next, x)

    return _run(update, eps_fn, sde, x, times, callback)


@torch.no_grad()
def probability_flow_heun(
    eps_fn: EpsFn,
    sde: SDE,
    x: torch.Tensor,
    times: torch.Tensor,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Heun's method on the probability-flow ODE: the mean of the slopes at both ends."""

    def update(x, eps, t, t_next, evaluate, last):
        h = expand_like(t - t_next, x)
        slope = _ode_slope(sde, x, eps, t)
        euler = x - slope * h
        if last:  # the slope near t_end is the stiffest; EDM takes a plain Euler step there
            return euler
        return x - 0.5 * (slope + _ode_slope(sde, euler, evaluate(euler, t_next), t_next)) * h

    return _run(update, eps_fn, sde, x, times, callback)


@torch.no_grad()
def ddim(
    eps_fn: EpsFn,
    sde: SDE,
    x: torch.Tensor,
    times: torch.Tensor,
    noise: NoiseFn | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Deterministic DDIM: keep the predicted noise, move the predicted image to the next noise level."""

    def update(x, eps, t, t_next, **_):
        return expand_like(sde.alpha(t_next), x) * sde.denoise(x, eps, t) + expand_like(sde.sigma(t_next), x) * eps

    return _run(update, eps_fn, sde, x, times, callback)


SAMPLERS = {
    "sde": reverse_sde_euler_maruyama,
    "pc": predictor_corrector,
    "ode": probability_flow_euler,
    "heun": probability_flow_heun,
    "ddim": ddim,
}
