"""The SDEs' closed forms against Monte Carlo and against each other; log-SNR grids."""

from __future__ import annotations

import math

import pytest
import torch

from latent_abstractions.diffusion.sde import VESDE, VPSDE, expand_like, log_snr_grid, make_sde, time_grid


@pytest.fixture
def sde():
    return VPSDE(beta_min=0.1, beta_max=20.0)


def simulate_forward(sde, x0: float, t_end: float, n: int = 40_000, steps: int = 400, seed: int = 0) -> torch.Tensor:
    """Euler-Maruyama on the forward SDE from x_0, n paths: draws of X_{t_end}."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.full((n,), x0, dtype=torch.float64)
    dt = t_end / steps
    for i in range(steps):
        t = torch.tensor([i * dt], dtype=torch.float64)
        noise = torch.randn(n, generator=generator, dtype=torch.float64)
        x = x + sde.drift(x, t.expand(n)) * dt + sde.diffusion(t) * math.sqrt(dt) * noise
    return x


def test_marginal_matches_simulated_forward_sde(sde):
    """dX = -1/2 beta X dt + sqrt(beta) dW from x_0 = 1.5 gives N(alpha x_0, sigma^2)."""
    x0, t_end = 1.5, 0.4
    x = simulate_forward(sde, x0, t_end)
    t = torch.tensor([t_end], dtype=torch.float64)
    assert float(x.mean()) == pytest.approx(float(sde.alpha(t)) * x0, abs=0.02)
    assert float(x.std()) == pytest.approx(float(sde.sigma(t)), abs=0.02)


def test_ve_marginal_matches_simulated_forward_sde():
    """dX = g(t) dW from x_0 = 1.5 gives N(x_0, sigma(t)^2 - sigma_min^2)."""
    sde = VESDE(sigma_min=0.01, sigma_max=5.0)
    x0, t_end = 1.5, 0.7
    x = simulate_forward(sde, x0, t_end, seed=1)
    t = torch.tensor([t_end], dtype=torch.float64)
    assert float(sde.alpha(t)) == 1.0
    assert float(x.mean()) == pytest.approx(x0, abs=0.04)
    assert float(x.std()) == pytest.approx(float(sde.sigma(t)), rel=0.02)
    assert float(sde.sigma(torch.tensor(0.0, dtype=torch.float64))) == 0.0
    assert sde.prior_std() == pytest.approx(5.0, rel=1e-4)


def test_make_sde_kinds():
    assert isinstance(make_sde({"kind": "vp", "beta_min": 0.1, "beta_max": 20}), VPSDE)
    assert make_sde({"kind": "ve", "sigma_min": 0.02, "sigma_max": 9}) == VESDE(0.02, 9.0)
    with pytest.raises(ValueError, match="unknown SDE kind 'sub-vp'"):
        make_sde({"kind": "sub-vp"})


def test_variance_preserving_and_log_snr(sde):
    t = torch.linspace(1e-3, 1.0, 50, dtype=torch.float64)
    assert torch.allclose(sde.alpha(t) ** 2 + sde.sigma(t) ** 2, torch.ones_like(t))
    assert torch.allclose(sde.log_snr(t), torch.log(sde.alpha(t) ** 2 / sde.sigma(t) ** 2))
    assert torch.all(torch.diff(sde.log_snr(t)) < 0)
    assert float(sde.alpha(torch.tensor(1.0))) < 0.01  # X_1 is nearly independent of x_0


def test_denoise_inverts_marginal(sde):
    x0 = torch.randn(8, 1, 4, 4)
    noise = torch.randn_like(x0)
    t = torch.rand(8) * 0.9 + 0.05
    x_t = sde.marginal(x0, t, noise)
    assert torch.allclose(sde.denoise(x_t, noise, t), x0, atol=1e-4)


def test_expand_like_broadcasts_per_sample():
    values = torch.arange(3.0)
    target = torch.zeros(3, 2, 5, 5)
    assert expand_like(values, target).shape == (3, 1, 1, 1)
    assert torch.equal((expand_like(values, target) + target)[:, 1, 4, 4], values)


def test_time_grid_runs_down():
    grid = time_grid(1.0, 1e-3, 10)
    assert len(grid) == 11 and grid[0] == 1.0 and grid[-1] == pytest.approx(1e-3)
    assert torch.all(torch.diff(grid) < 0)


SDES = [VPSDE(), VPSDE(beta_min=1.0, beta_max=1.0), VESDE(), VESDE(sigma_min=0.02, sigma_max=5.0)]


@pytest.mark.parametrize("sde", SDES, ids=["vp", "vp-constant-beta", "ve", "ve-small"])
def test_time_of_log_snr_inverts_log_snr(sde):
    t = torch.logspace(-6, 0, 200, dtype=torch.float64)
    assert torch.allclose(sde.time_of_log_snr(sde.log_snr(t)), t, rtol=1e-10, atol=0)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["vp", "ve"])
def test_log_snr_derivative_is_minus_g_squared_over_sigma_squared(sde):
    """d lambda / dt = -g^2 / sigma^2: the identity that turns the MINDE integral into one over log-SNR."""
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    h = 1e-6
    derivative = (sde.log_snr(t + h) - sde.log_snr(t - h)) / (2 * h)
    assert torch.allclose(derivative, -(sde.diffusion(t) ** 2) / sde.sigma(t) ** 2, rtol=1e-6)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["vp", "ve"])
def test_log_snr_grid_is_uniform_in_log_snr(sde):
    grid = log_snr_grid(sde, 1.0, 1e-3, 9)
    assert grid.dtype == torch.float64 and grid[0] == 1.0 and grid[-1] == 1e-3
    steps = torch.diff(sde.log_snr(grid))
    assert torch.all(steps > 0) and torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-9)
    assert torch.equal(time_grid(1.0, 1e-3, 8, sde=sde), grid.float())  # the default spacing given an sde


def test_time_grid_spacings_and_bad_input():
    sde = VPSDE()
    assert torch.equal(time_grid(1.0, 1e-3, 10, sde=sde, spacing="uniform"), time_grid(1.0, 1e-3, 10))
    with pytest.raises(ValueError, match="log_snr time grid needs the sde"):
        time_grid(1.0, 1e-3, 10, spacing="log_snr")
    with pytest.raises(ValueError, match="unknown time spacing 'edm'"):
        time_grid(1.0, 1e-3, 10, sde=sde, spacing="edm")
    with pytest.raises(ValueError, match="must be > 0"):
        log_snr_grid(sde, 1.0, 0.0, 10)
    with pytest.raises(ValueError, match="at least 2 points"):
        log_snr_grid(sde, 1.0, 0.5, 1)
