"""Mutual information: the score-difference estimator, driven by the exact (Bayes) epsilon of a
finite data set, agrees with the exact I(Y_k; X_t) from the mixture posterior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent_abstractions import information
from latent_abstractions.datasets import bumps
from latent_abstractions.ground_truth import ExactEpsilon
from latent_abstractions.sde import VPSDE


def test_cumulative_integral_of_a_known_function():
    times = np.linspace(1.0, 0.0, 101)
    integrand = np.stack([2 * times, np.ones_like(times)], axis=1)  # 1/2 int_t^1 2s ds = (1 - t^2) / 2
    cumulative = information.cumulative_from_top(times, integrand)
    assert np.allclose(cumulative[:, 0], (1 - times**2) / 2, atol=1e-4)
    assert np.allclose(cumulative[:, 1], (1 - times) / 2)


def test_factor_entropy():
    assert information.factor_entropy(np.array([0, 1, 2, 3])) == pytest.approx(np.log(4))
    assert information.factor_entropy(np.array([1, 1, 1])) == 0.0


@pytest.fixture(scope="module")
def small_bumps():
    return bumps.make(height=8, width=8, sigma=1.0, spacing_x=2.0, spacing_y=4.0, margin=1.0)  # 3 x 2 centres


def test_exact_mi_runs_from_entropy_to_zero(small_bumps):
    sde = VPSDE()
    names = ["x", "y"]
    result = information.estimate(
        ExactEpsilon(sde, torch.tensor(small_bumps.images), torch.tensor(small_bumps.factors[names].to_numpy())),
        sde, small_bumps.images, small_bumps.factors[names].to_numpy(),
        small_bumps.factors[["x_bin", "y_bin"]].to_numpy(), t_end=1e-3, points=8, samples=256, seed=0,
        device=torch.device("cpu"))
    exact = result["exact"]
    assert np.allclose(result["entropy"], [np.log(3), np.log(2)])
    assert np.allclose(exact[-1], result["entropy"], atol=1e-3)  # at t = 1e-3 the image gives the factor away
    assert np.all(np.abs(exact[0]) < 0.02)  # at t = 1 nothing is left


def test_score_difference_with_exact_scores_matches_exact_mi(small_bumps):
    sde = VPSDE()
    names = ["x", "y"]
    values = small_bumps.factors[names].to_numpy()
    oracle = ExactEpsilon(sde, torch.tensor(small_bumps.images), torch.tensor(values))
    result = information.estimate(oracle, sde, small_bumps.images, values,
                                  small_bumps.factors[["x_bin", "y_bin"]].to_numpy(),
                                  t_end=1e-3, points=48, samples=512, seed=1, device=torch.device("cpu"))
    gap = np.abs(result["score_difference"] - result["exact"])
    assert gap.max() < 0.1, f"largest gap {gap.max():.3f} nats"
    # and the curve is not trivially flat: it rises by most of H(Y) along the trajectory
    assert np.all(result["score_difference"][-1] > 0.9 * result["entropy"])


def test_exact_epsilon_respects_the_condition(small_bumps):
    """Given x and y (one image), the exact denoiser returns that image whatever the noise."""
    sde = VPSDE()
    images = torch.tensor(small_bumps.images)
    values = torch.tensor(small_bumps.factors[["x", "y"]].to_numpy())
    oracle = ExactEpsilon(sde, images, values)
    t = torch.full((3,), 0.6)
    x = torch.randn(3, 1, 8, 8)
    eps, _ = oracle(x, t, values[[0, 3, 5]], torch.ones(3, 2, dtype=torch.bool))
    assert torch.allclose(sde.denoise(x, eps, t), images[[0, 3, 5]], atol=1e-4)
