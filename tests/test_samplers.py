"""The reverse-SDE sampler, driven by an exact score, reproduces the data distribution."""

from __future__ import annotations

import pytest
import torch

from latent_abstractions.samplers import reverse_sde_euler_maruyama
from latent_abstractions.sde import VPSDE, expand_like, time_grid


def test_gaussian_data_is_recovered():
    """Data N(m, v): X_t ~ N(alpha m, alpha^2 v + sigma^2), so eps(x, t) = sigma (x - alpha m) / var_t."""
    sde, mean, variance = VPSDE(), 0.7, 0.09

    def exact_eps(x, t, step):
        alpha, sigma = expand_like(sde.alpha(t), x), expand_like(sde.sigma(t), x)
        return sigma * (x - alpha * mean) / (alpha**2 * variance + sigma**2)

    generator = torch.Generator().manual_seed(0)
    prior = sde.prior_sample((20_000, 1), generator)
    seen = []
    samples = reverse_sde_euler_maruyama(exact_eps, sde, prior, time_grid(1.0, 1e-3, 500), generator,
                                         callback=lambda step, t, x, eps: seen.append(step))
    assert seen == list(range(501))
    assert float(samples.mean()) == pytest.approx(mean, abs=0.01)
    assert float(samples.var()) == pytest.approx(variance, rel=0.05)
