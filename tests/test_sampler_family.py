"""Every sampler, driven by an exact score, reproduces its target: a Gaussian data
distribution, and the requested image of a finite data set conditioned on all factors."""

from __future__ import annotations

import pytest
import torch

from latent_abstractions.analysis.oracles import ExactEpsilon
from latent_abstractions.datasets import bumps
from latent_abstractions.diffusion.samplers import AUXILIARY, SAMPLERS, gaussian_noise
from latent_abstractions.diffusion.sde import VESDE, VPSDE, expand_like, time_grid


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_min=0.01, sigma_max=20.0)], ids=["vp", "ve"])
def test_gaussian_data_is_recovered(sampler, sde):
    """Data N(m, v): X_t ~ N(alpha m, alpha^2 v + sigma^2), so eps(x, t) = sigma (x - alpha m) / var_t."""
    mean, variance = 0.7, 0.09

    def exact_eps(x, t, step):
        alpha, sigma = expand_like(sde.alpha(t), x), expand_like(sde.sigma(t), x)
        return sigma * (x - alpha * mean) / (alpha**2 * variance + sigma**2)

    generator = torch.Generator().manual_seed(0)
    t_max = torch.tensor([1.0])
    prior = sde.alpha(t_max) * mean + torch.sqrt(
        sde.alpha(t_max) ** 2 * variance + sde.sigma(t_max) ** 2
    ) * torch.randn((1000, 16), generator=generator)  # 16 dimensions: a corrector step scales with ||z||
    seen = []
    samples = SAMPLERS[sampler](
        exact_eps,
        sde,
        prior,
        time_grid(1.0, 1e-3, 1000, sde=sde),
        gaussian_noise(generator),
        callback=lambda step, t, x, eps: seen.append(step),
    )
    assert seen == list(range(1001))
    assert float(samples.mean()) == pytest.approx(mean, abs=0.01)
    assert float(samples.var()) == pytest.approx(variance, rel=0.06)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_conditioned_on_every_factor_the_requested_image_comes_out(sampler):
    data = bumps.make(height=8, width=8, sigma=1.0, spacing_x=2.0, spacing_y=2.0, margin=1.0)
    sde = VPSDE()
    values = torch.tensor(data.factors[["x", "y"]].to_numpy(), dtype=torch.float32)
    oracle = ExactEpsilon(sde, torch.as_tensor(data.images), values)
    requested = values[[0, 3, 5, 8]]
    keep = torch.ones_like(requested, dtype=torch.bool)
    auxiliary = []

    def eps_fn(x, t, step):
        auxiliary.append(step == AUXILIARY)
        return oracle(x, t, requested, keep)[0]

    generator = torch.Generator().manual_seed(1)
    prior = sde.prior_sample((4, 1, 8, 8), generator)
    final = SAMPLERS[sampler](eps_fn, sde, prior, time_grid(1.0, 1e-3, 200, sde=sde), gaussian_noise(generator))
    target = torch.as_tensor(data.images)[[0, 3, 5, 8]]
    assert float((final - target).abs().max()) < 0.05
    assert any(auxiliary) == (sampler in ("pc", "heun"))
