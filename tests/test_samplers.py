"""Time grids: evenly in log-SNR, the reverse-SDE sampler driven by an exact score leaves far
less residual noise at t_end than on a grid uniform in t (every sampler's targets:
test_sampler_family.py)."""

from __future__ import annotations

import torch

from latent_abstractions.analysis.oracles import ExactEpsilon
from latent_abstractions.datasets import bumps
from latent_abstractions.diffusion.samplers import gaussian_noise, reverse_sde_euler_maruyama
from latent_abstractions.diffusion.sde import VPSDE, time_grid


def residual_noise(spacing: str, steps: int = 60, t_end: float = 1e-3, samples: int = 64) -> float:
    """Euler-Maruyama under the exact score of 16 x 16 bumps (144 images): the per-pixel RMS
    distance of the state at t_end to the nearest alpha(t_end) x_i, averaged over samples."""
    data = bumps.make(height=16, width=16, sigma=1.0, spacing_x=1.0, spacing_y=1.0, margin=2.0)
    sde = VPSDE()
    oracle = ExactEpsilon(sde, data.images, data.factors[["x", "y"]].to_numpy())
    no_condition = torch.zeros(samples, 2, dtype=torch.bool)

    def eps_fn(x, t, step):
        return oracle(x, t, torch.zeros(samples, 2), no_condition)[0]

    final = {}
    generator = torch.Generator().manual_seed(0)
    prior = sde.prior_sample((samples, 1, 16, 16), generator)
    times = time_grid(1.0, t_end, steps, sde=sde, spacing=spacing)
    reverse_sde_euler_maruyama(
        eps_fn,
        sde,
        prior,
        times,
        gaussian_noise(generator),
        callback=lambda step, t, x, eps: final.update(x=x) if step == steps else None,
    )
    alpha = float(sde.alpha(torch.tensor(t_end)))
    distance = torch.cdist(final["x"].flatten(1).double(), alpha * torch.as_tensor(data.images).flatten(1).double())
    return float(distance.min(dim=1).values.mean()) / 16


def test_log_snr_grid_leaves_only_the_noise_of_t_end():
    """60 steps evenly in log-SNR end at about sigma(t_end) from a data image; evenly in t,
    the last steps are too coarse and leave several times that."""
    sigma_end = float(VPSDE().sigma(torch.tensor(1e-3)))  # 0.0105
    log_snr, uniform = residual_noise("log_snr"), residual_noise("uniform")
    assert log_snr < 1.5 * sigma_end, f"log-SNR grid: {log_snr:.4f} per pixel"
    assert uniform > 5 * log_snr, f"uniform grid {uniform:.4f} vs log-SNR grid {log_snr:.4f} per pixel"
