"""Mutual information between a factor and the noised state, I(Y_k; X_t), in nats.

Two estimates side by side:

- ``score_difference`` (MINDE, Franzese et al. ICLR 2024): for the forward SDE
  dX = f dt + g dW and X_T independent of Y,
      I(Y; X_t) = 1/2 int_t^T g(s)^2 E || grad log p_s(X_s | Y) - grad log p_s(X_s) ||^2 ds.
  With an epsilon-network, score = -eps / sigma_s, so the integrand is
  g(s)^2 / sigma_s^2 * E || eps(X_s, s | y_k) - eps(X_s, s | none) ||^2, where the
  first pass keeps factor k only and the second keeps none.
- ``exact``: the data set is a finite set of images, so p_s is a mixture of
  N(alpha_s x_i, sigma_s^2 I); the posterior over images, hence over each
  factor's values, is exact, and I = H(Y_k) - E[H(Y_k | X_s)] up to Monte-Carlo
  error over X_s.

Both use the same draws of (x_0, X_s) at each time.
"""

from __future__ import annotations

import numpy as np
import torch

from .ground_truth import factor_posterior, image_posterior
from .sde import SDE


def quadrature_times(t_end: float, points: int, t_max: float = 1.0) -> np.ndarray:
    """Times from t_max down to t_end, evenly spaced in log t (the integrand grows like 1/t near 0)."""
    return np.geomspace(t_max, t_end, points)


def cumulative_from_top(times: np.ndarray, integrand: np.ndarray) -> np.ndarray:
    """1/2 int_t^{times[0]} integrand(s) ds at every t in the decreasing ``times`` (trapezoid rule)."""
    widths = (times[:-1] - times[1:]).reshape((-1,) + (1,) * (integrand.ndim - 1))
    pieces = 0.5 * widths * (integrand[:-1] + integrand[1:])
    return 0.5 * np.concatenate([np.zeros_like(pieces[:1]), np.cumsum(pieces, axis=0)])


def factor_entropy(labels: np.ndarray) -> float:
    """H(Y) in nats of the empirical distribution of integer labels."""
    counts = np.bincount(labels)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@torch.no_grad()
def score_difference_integrand(model: torch.nn.Module, sde: SDE, x_s: torch.Tensor, s: float,
                               factor_values: torch.Tensor) -> np.ndarray:
    """g^2/sigma^2 E||eps(.|y_k) - eps(.|none)||^2 for every factor k, from one batched pass."""
    batch, n_factors = factor_values.shape
    keeps = [torch.zeros(batch, n_factors, dtype=torch.bool)]  # none kept
    for k in range(n_factors):
        keep = torch.zeros(batch, n_factors, dtype=torch.bool)
        keep[:, k] = True
        keeps.append(keep)
    device = x_s.device
    keep = torch.cat(keeps).to(device)
    repeats = n_factors + 1
    t = torch.full((batch * repeats,), s, device=device)
    eps, _ = model(x_s.repeat(repeats, *([1] * (x_s.ndim - 1))), t, factor_values.repeat(repeats, 1), keep)
    eps = eps.reshape(repeats, batch, -1).double()
    squared = (eps[1:] - eps[:1]).pow(2).sum(dim=-1).mean(dim=-1)  # (n_factors,)
    ts = torch.tensor([s], dtype=torch.float64)
    weight = sde.diffusion(ts) ** 2 / sde.sigma(ts) ** 2
    return (weight * squared.cpu()).numpy()


def exact_conditional_entropy(x_s: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                              alpha: torch.Tensor, sigma: torch.Tensor) -> np.ndarray:
    """Mean over draws of H(Y_k | X_s) for every factor k, from the exact mixture posterior.

    ``images`` (N, ...), ``labels`` (N, n_factors) int, ``x_s`` (B, ...), ``alpha``/``sigma`` (B,).
    """
    posterior = image_posterior(x_s, images, alpha, sigma)
    entropies = []
    for k in range(labels.shape[1]):
        p = factor_posterior(posterior, labels[:, k])
        entropies.append(float(-(p * torch.log(p.clamp_min(1e-300))).sum(1).mean()))
    return np.asarray(entropies)


def estimate(model: torch.nn.Module, sde: SDE, images: np.ndarray, factor_values: np.ndarray, labels: np.ndarray,
             t_end: float, points: int, samples: int, seed: int, device: torch.device) -> dict[str, np.ndarray]:
    """Both estimates of I(Y_k; X_t) on the quadrature grid.

    Returns ``times`` (P,), ``score_difference`` and ``exact`` (P, n_factors), ``entropy`` (n_factors,).
    """
    generator = torch.Generator().manual_seed(seed)
    data = torch.tensor(np.asarray(images), dtype=torch.float32)
    values = torch.tensor(np.asarray(factor_values), dtype=torch.float32)
    labels_t = torch.tensor(np.asarray(labels), dtype=torch.long)
    times = quadrature_times(t_end, points)
    integrand, conditional_entropy = [], []
    for s in times:
        index = torch.randint(len(data), (samples,), generator=generator)
        noise = torch.randn((samples,) + tuple(data.shape[1:]), generator=generator)
        ts = torch.full((samples,), float(s))
        x_s = sde.marginal(data[index], ts, noise)
        integrand.append(score_difference_integrand(model, sde, x_s.to(device), float(s), values[index].to(device)))
        conditional_entropy.append(exact_conditional_entropy(x_s, data, labels_t, sde.alpha(ts), sde.sigma(ts)))
    entropy = np.asarray([factor_entropy(labels[:, k]) for k in range(labels.shape[1])])
    return {
        "times": times,
        "score_difference": cumulative_from_top(times, np.stack(integrand)),
        "exact": entropy[None, :] - np.stack(conditional_entropy),
        "entropy": entropy,
    }
