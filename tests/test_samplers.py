"""The reverse-SDE sampler, driven by an exact score, reproduces the data distribution."""

from __future__ import annotations

import pytest
import torch

from latent_abstractions.samplers import SAMPLERS
from latent_abstractions.sde import VESDE, VPSDE, expand_like, time_grid


@pytest.mark.parametrize("sampler", ["sde", "ode"])
@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_min=0.01, sigma_max=20.0)], ids=["vp", "ve"])
def test_gaussian_data_is_recovered(sampler, sde):
    """Data N(m, v): X_t ~ N(alpha m, alpha^2 v + sigma^2), so eps(x, t) = sigma (x - alpha m) / var_t."""
    mean, variance = 0.7, 0.09

    def exact_eps(x, t, step):
        alpha, sigma = expand_like(sde.alpha(t), x), expand_like(sde.sigma(t), x)
        return sigma * (x - alpha * mean) / (alpha**2 * variance + sigma**2)

    generator = torch.Generator().manual_seed(0)
    # Start from the exact X_T (the prior differs from it by a little, which is not under test here).
    t_max = torch.tensor([1.0])
    prior = sde.alpha(t_max) * mean + torch.sqrt(sde.alpha(t_max) ** 2 * variance + sde.sigma(t_max) ** 2) * \
        torch.randn((10_000, 1), generator=generator)
    seen = []
    samples = SAMPLERS[sampler](exact_eps, sde, prior, time_grid(1.0, 1e-3, 2000), generator,
                                callback=lambda step, t, x, eps: seen.append(step))
    assert seen == list(range(2001))
    assert float(samples.mean()) == pytest.approx(mean, abs=0.01)
    assert float(samples.var()) == pytest.approx(variance, rel=0.05)
