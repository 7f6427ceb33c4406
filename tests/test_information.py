"""Mutual information: the score-difference estimators, driven by exact epsilons, agree with the
exact I(Y_k; X_t) of a finite image set and with the closed form of Gaussian tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent_abstractions.analysis import information
from latent_abstractions.analysis.ground_truth import FiniteMixture
from latent_abstractions.analysis.oracles import ExactEpsilon, GaussianEpsilon, gaussian_suite
from latent_abstractions.datasets import bumps
from latent_abstractions.diffusion.conditioning import subset_keep_mask
from latent_abstractions.diffusion.schedule import training_times
from latent_abstractions.diffusion.sde import T_MIN, VESDE, VPSDE


def test_cumulative_integral_of_a_known_function():
    grid = np.linspace(-3.0, 2.0, 101)
    integrand = np.stack([2 * grid, np.ones_like(grid)], axis=1)  # 1/2 int_{-3}^x 2s ds = (x^2 - 9) / 2
    value, _ = information.integrate(grid, integrand, np.zeros_like(integrand))
    assert np.allclose(value[:, 0], (grid**2 - 9) / 2, atol=1e-4)
    assert np.allclose(value[:, 1], (grid + 3) / 2)


def test_integral_standard_error_matches_its_spread():
    """Independent noise at the grid points: the propagated error is the spread of the integral."""
    grid = np.linspace(0.0, 4.0, 9)
    stderr = np.linspace(0.1, 0.5, 9)[:, None]
    rng = np.random.default_rng(0)
    integrals = [information.integrate(grid, rng.normal(1.0, stderr), stderr)[0][-1, 0] for _ in range(4000)]
    _, error = information.integrate(grid, np.ones_like(stderr), stderr)
    assert np.std(integrals) == pytest.approx(error[-1, 0], rel=0.05)


def test_factor_entropy():
    assert information.factor_entropy(np.array([0, 1, 2, 3])) == pytest.approx(np.log(4))
    assert information.factor_entropy(np.array([1, 1, 1])) == 0.0


def small_bumps():
    """3 x 2 bump centres on an 8 x 8 canvas: continuous condition values, labels their bins."""
    data = bumps.make(height=8, width=8, sigma=1.0, spacing_x=2.0, spacing_y=4.0, margin=1.0)
    return data.images, data.factors[["x", "y"]].to_numpy(), data.factors[["x_bin", "y_bin"]].to_numpy()


def small_categorical():
    """The full factorial of three categorical factors (2, 3, 4 values), each adding a random
    pattern: 24 images of 6 x 6 pixels whose factors overlap in pixel space."""
    rng = np.random.default_rng(0)
    sizes = (2, 3, 4)
    labels = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
    images = sum(rng.normal(0.0, 0.35, (s, 1, 6, 6))[labels[:, k]] for k, s in enumerate(sizes))
    return np.clip(images, -1, 1).astype(np.float32), labels.astype(np.float64), labels


@pytest.mark.parametrize(
    "data, sde",
    [
        (small_bumps, VPSDE()),
        (small_categorical, VPSDE()),
        (small_bumps, VESDE(sigma_min=0.01, sigma_max=5.0)),  # I(Y; X_T) is about 0.06 nats here
    ],
    ids=["bumps-vp", "categorical-vp", "bumps-ve"],
)
def test_score_forms_with_exact_epsilon_match_exact_mi(data, sde):
    images, values, labels = data()
    oracle, mixture = ExactEpsilon(sde, images, values), FiniteMixture(images, labels, values)
    result = information.mutual_information(
        oracle, sde, mixture, t_end=1e-3, points=64, samples=4096, seed=1, batch_size=8192
    )
    exact = result.mean["exact"]
    assert np.allclose(exact[-1], result.entropy, atol=1e-3)  # at t = 1e-3 the image gives every factor away
    for form in information.SCORE_FORMS:
        gap = np.abs(result.mean[form] - exact)
        assert gap.max() < 0.05, f"{form}: largest gap {gap.max():.3f} nats"
        combined = np.hypot(result.stderr[form], result.stderr["exact"])
        assert 0.002 < combined[-1].min() and combined.max() < 0.02  # the errors are reported, and small
        assert np.all(gap < 5 * combined + 0.02)  # ... and describe the gap (plus a little quadrature error)
    assert result.mean["bayes_accuracy"][-1] == pytest.approx(1.0)
    # For the exact posterior, E log p(Y | X_t) = -E H(Y | X_t).
    difference = result.mean["log_likelihood"] + result.mean["conditional_entropy"]
    assert np.all(np.abs(difference) < 5 * result.stderr["log_likelihood"] + 1e-3)


def test_exact_curve_runs_from_zero_to_entropy_without_a_model():
    images, values, labels = small_bumps()
    sde = VPSDE()
    result = information.mutual_information(
        None, sde, FiniteMixture(images, labels, values), t_end=1e-3, points=8, samples=256, seed=0
    )
    assert set(result.mean) == {"exact", "conditional_entropy", "bayes_accuracy", "log_likelihood"}
    assert np.allclose(result.entropy, [np.log(3), np.log(2)])
    assert np.all(np.abs(result.mean["exact"][0]) < 0.02)  # at t = 1 nothing is left
    assert np.allclose(result.mean["bayes_accuracy"][0], [1 / 3, 1 / 2], atol=0.01)
    assert np.all(np.diff(result.log_snr) > 0) and result.times[0] == 1.0 and result.times[-1] == 1e-3
    table = result.columns(["x", "y"])
    assert len(table["mean"]) == 4 * 2 * 8 and all(len(column) == 64 for column in table.values())
    at = (table["quantity"] == "bayes_accuracy") & (table["factor"] == "y")
    assert np.array_equal(table["mean"][at], result.mean["bayes_accuracy"][:, 1])
    assert np.array_equal(table["t"][at], result.times) and np.all(table["factor_entropy"][at] == np.log(2))


class OffsetUnconditional(torch.nn.Module):
    """The exact epsilon, except that the unconditional pass is off by a constant."""

    def __init__(self, oracle: torch.nn.Module, offset: float):
        super().__init__()
        self.oracle, self.offset = oracle, offset

    def forward(self, x, t, factor_values, keep, taps=()):
        eps, taps = self.oracle(x, t, factor_values, keep)
        return eps + self.offset * (~keep.any(dim=1)).to(eps.dtype).reshape(-1, 1, 1, 1), taps


def test_consistency_is_zero_for_the_exact_model_and_measures_an_offset():
    images, values, labels = small_bumps()
    sde = VPSDE()
    oracle, mixture = ExactEpsilon(sde, images, values), FiniteMixture(images, labels, values)
    settings = dict(t_end=1e-3, points=6, samples=32, seed=0, consistency=True)
    exact = information.mutual_information(oracle, sde, mixture, **settings)
    assert np.all(exact.mean["consistency"] < 1e-9)
    offset = information.mutual_information(OffsetUnconditional(oracle, 0.1), sde, mixture, **settings)
    assert np.allclose(offset.mean["consistency"], 0.1**2 * images[0].size, rtol=1e-4)
    # A worse unconditional pass makes the orthogonal form overshoot; the MMSE difference does not.
    assert np.all(offset.mean["orthogonal"][-1] > exact.mean["orthogonal"][-1] + 1.0)
    assert np.all(offset.mean["mmse_difference"][-1] > exact.mean["mmse_difference"][-1] + 1.0)


def test_consistency_needs_one_condition_value_per_label():
    images, values, labels = small_bumps()
    values = values + np.random.default_rng(0).normal(0, 0.1, values.shape)  # continuous centres
    sde = VPSDE()
    with pytest.raises(ValueError, match="several condition values"):
        information.mutual_information(
            ExactEpsilon(sde, images, values),
            sde,
            FiniteMixture(images, labels, values),
            t_end=1e-3,
            points=4,
            samples=4,
            seed=0,
            consistency=True,
        )


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(points=1), "at least 2 points"),
        (dict(t_end=0.0), "t_end must lie in"),
        (dict(exact=False), "nothing to estimate"),
        (dict(consistency=True, source=gaussian_suite()[0]), "consistency check needs"),
    ],
)
def test_bad_settings_are_refused(bad, message):
    images, values, labels = small_bumps()
    settings = dict(source=FiniteMixture(images, labels, values), t_end=1e-3, points=4, samples=4, seed=0) | bad
    with pytest.raises(ValueError, match=message):
        information.mutual_information(None, VPSDE(), **settings)


@pytest.mark.parametrize("task", gaussian_suite(), ids=lambda task: task.name)
@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_min=0.01, sigma_max=50.0)], ids=["vp", "ve"])
def test_score_forms_match_gaussian_closed_form(task, sde):
    result = information.mutual_information(
        GaussianEpsilon(sde, task), sde, task, t_end=1e-3, points=64, samples=8192, seed=2, batch_size=1 << 16
    )
    truth = result.mean["exact"]
    assert np.allclose(truth[-1], task.mutual_information(sde, 1e-3))
    assert truth.max() <= 4.1 and np.all(np.diff(truth, axis=0) >= -1e-12)
    for form in information.SCORE_FORMS:
        relative = np.abs(result.mean[form][-1] - truth[-1]) / truth[-1]
        assert relative.max() < 0.05, f"{form}: relative error {relative.max():.3f} at t_end"
        assert np.abs(result.mean[form] - truth).max() < 0.05 * truth[-1].max() + 0.02


def test_exact_epsilon_respects_the_condition():
    """Given x and y (one image), the exact denoiser returns that image whatever the noise."""
    images, values, _ = small_bumps()
    sde = VPSDE()
    oracle = ExactEpsilon(sde, torch.tensor(images), torch.tensor(values))
    t = torch.full((3,), 0.6)
    x = torch.randn(3, 1, 8, 8)
    eps, _ = oracle(x, t, torch.tensor(values[[0, 3, 5]]), torch.ones(3, 2, dtype=torch.bool))
    assert torch.allclose(sde.denoise(x, eps, t), torch.tensor(images[[0, 3, 5]]), atol=1e-4)


def test_subset_masks_train_every_pass_the_estimators_use():
    """None kept, all kept and each factor alone are frequent (conditioning.subset_keep_mask)."""
    generator = torch.Generator().manual_seed(0)
    k, rest = 6, 1 - 0.1 - 0.1 - 0.5
    keep = subset_keep_mask(200_000, k, p_none=0.1, p_all=0.1, p_single=0.5, generator=generator)
    size = keep.sum(dim=1)
    assert float((size == 0).float().mean()) == pytest.approx(0.1 + rest / (k + 1), abs=0.005)
    assert float((size == k).float().mean()) == pytest.approx(0.1 + rest / (k + 1), abs=0.005)
    alone = keep[size == 1].float().sum(dim=0) / len(keep)
    assert torch.allclose(alone, torch.full((k,), 0.5 / k + rest / (k * (k + 1))), atol=0.004)
    middle = (size > 1) & (size < k)
    assert float(middle.float().mean()) == pytest.approx(rest * (k - 2) / (k + 1), abs=0.005)
    # Sizes 2..5, mean 3.5: no factor favoured.
    assert torch.allclose(keep[middle].float().mean(dim=0), torch.full((k,), 3.5 / k), atol=0.01)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(0.01, 5.0)], ids=["vp", "ve"])
def test_training_times_uniform_in_log_snr(sde):
    """time_sampling: log_snr gives noise levels whose log-SNR is uniform over the trained
    range (t in [T_MIN, 1]); t gives times uniform in t."""
    uniform = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    ends = sde.log_snr(torch.tensor([1.0, T_MIN]))
    t = training_times(sde, uniform, "log_snr")
    assert float(t.min()) >= T_MIN and float(t.max()) <= 1.0
    position = (sde.log_snr(t) - ends[0]) / (ends[1] - ends[0])
    assert torch.allclose(
        torch.quantile(position, torch.tensor([0.1, 0.5, 0.9])), torch.tensor([0.1, 0.5, 0.9]), atol=0.01
    )
    by_t = training_times(sde, uniform, "t")
    assert float((by_t < 0.1).float().mean()) == pytest.approx(0.1, abs=0.01)
    assert float((t < 0.1).float().mean()) > 0.3  # the high-SNR end trained three times as often
    mixed = training_times(sde, uniform, "mixed")  # half of each
    for cut in (0.1, 0.5):
        expected = 0.5 * (float((by_t < cut).float().mean()) + float((t < cut).float().mean()))
        assert float((mixed < cut).float().mean()) == pytest.approx(expected, abs=0.01)
    with pytest.raises(ValueError, match="time_sampling 'edm'"):
        training_times(sde, uniform, "edm")


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(p_none=1.2), "p_none must lie in"),
        (dict(p_none=0.5, p_all=0.5, p_single=0.5), "must not exceed 1"),
    ],
)
def test_subset_masks_refuse_bad_probabilities(bad, message):
    settings = dict(p_none=0.1, p_all=0.1, p_single=0.5) | bad
    with pytest.raises(ValueError, match=message):
        subset_keep_mask(4, 3, **settings)


def test_rows_per_call_change_the_grouping_not_the_estimate():
    """One call of every draw's passes, or many small ones: the same per-draw terms
    (the exact epsilon is row-wise, so equal to the last bit)."""
    sde = VPSDE()
    images, values, labels = small_bumps()
    oracle, mixture = ExactEpsilon(sde, images, values), FiniteMixture(images, labels, values)
    estimates = [
        information.mutual_information(oracle, sde, mixture, t_end=1e-2, points=4, samples=64, seed=1, batch_size=rows)
        for rows in (3, 50, 8192)
    ]
    for other in estimates[1:]:
        for name, mean in estimates[0].mean.items():
            assert np.array_equal(mean, other.mean[name]), name
            assert np.array_equal(estimates[0].stderr[name], other.stderr[name]), name
