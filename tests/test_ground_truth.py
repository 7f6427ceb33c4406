"""Exact quantities: the streamed mixture posterior equals the direct one whatever the chunking
and storage, the stratified draws are balanced, and the Gaussian tasks' closed forms hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latent_abstractions.analysis.ground_truth import FiniteMixture, entropy_terms
from latent_abstractions.analysis.oracles import GaussianEpsilon, GaussianTask, gaussian_suite
from latent_abstractions.diffusion.sde import VPSDE


@pytest.fixture(scope="module")
def data():
    """40 random uint8 images (2 x 3 x 3) and two factors, one categorical with 4 values, one with 2."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 2, 3, 3), dtype=np.uint8)
    labels = np.stack([np.arange(40) % 4, (np.arange(40) // 4) % 2], axis=1)
    return images, labels, labels.astype(np.float64)


def direct_posterior(x, images, alpha, sigma, allowed=None):
    """p(i | x) by the plain softmax over all (``allowed``) images at once, float64."""
    flat = torch.as_tensor(images).flatten(1).double()
    squared = (x.flatten(1).double()[:, None, :] - alpha[:, None, None] * flat[None]).pow(2).sum(-1)
    if allowed is not None:
        squared = squared.masked_fill(~allowed, math.inf)
    return torch.softmax(-squared / (2 * sigma[:, None] ** 2), dim=1)


@pytest.mark.parametrize("sigma", [0.05, 0.5, 3.0])
def test_streamed_posteriors_equal_the_direct_ones(data, sigma):
    images, labels, values = data
    float_images = images / 127.5 - 1.0
    rows = np.arange(0, 40, 3)  # a "train split"
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, 3, 3, generator=generator, dtype=torch.float64)
    alpha, sigma = torch.full((5,), 0.8, dtype=torch.float64), torch.full((5,), sigma, dtype=torch.float64)
    p = direct_posterior(x, float_images[rows], alpha, sigma)
    expected = [
        torch.zeros(5, v, dtype=torch.float64).index_add_(1, torch.as_tensor(labels[rows, k]), p)
        for k, v in enumerate((4, 2))
    ]
    for stored in (images, float_images, torch.as_tensor(images)):
        for chunk_size in (1, 7, 40):
            mixture = FiniteMixture(stored, labels, values, rows=rows, chunk_size=chunk_size)
            for got, want in zip(mixture.factor_posteriors(x, alpha, sigma), expected):
                assert torch.allclose(got, want, rtol=0, atol=1e-10)
    # The conditional mean over the images whose first factor is 2:
    keep = torch.tensor([[True, False]] * 5)
    condition = torch.tensor([[2.0, 0.0]] * 5)
    restricted = direct_posterior(x, float_images[rows], alpha, sigma, torch.as_tensor(labels[rows, 0] == 2))
    want = (restricted @ torch.as_tensor(float_images[rows]).flatten(1).double()).reshape(x.shape)
    for chunk_size in (3, 40):
        mixture = FiniteMixture(images, labels, values, rows=rows, chunk_size=chunk_size)
        assert torch.allclose(mixture.conditional_mean(x, alpha, sigma, condition, keep), want, rtol=0, atol=1e-10)


def test_memory_map_and_device_cache_give_the_same_posteriors(data, tmp_path):
    images, labels, values = data
    np.save(tmp_path / "images.npy", images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")
    x = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    alpha, sigma = torch.full((3,), 0.5, dtype=torch.float64), torch.full((3,), 0.7, dtype=torch.float64)
    reference = FiniteMixture(images, labels, values, chunk_size=40).factor_posteriors(x, alpha, sigma)
    for mixture in (
        FiniteMixture(mapped, labels, values, chunk_size=6),
        FiniteMixture(mapped, labels, values, chunk_size=6).to("cpu"),
    ):
        for got, want in zip(mixture.factor_posteriors(x, alpha, sigma), reference):
            assert torch.allclose(got, want, rtol=0, atol=1e-12)
        assert torch.equal(mixture.gather(np.array([5, 0, 5])), torch.as_tensor(images[[5, 0, 5]]).double() / 127.5 - 1)


def test_tiny_noise_gives_a_one_hot_posterior_without_overflow(data):
    images, labels, values = data
    mixture = FiniteMixture(images, labels, values, chunk_size=7)
    x = mixture.gather(np.array([11, 30]))
    tiny = torch.full((2,), 1e-6, dtype=torch.float64)
    posteriors = mixture.factor_posteriors(x, torch.ones(2, dtype=torch.float64), tiny)
    assert torch.equal(posteriors[0].argmax(1), torch.as_tensor(labels[[11, 30], 0]))
    assert all(torch.allclose(p.max(1).values, torch.ones(2, dtype=torch.float64)) for p in posteriors)


def test_entropy_terms_of_a_known_posterior():
    posteriors = [torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)]
    labels = torch.tensor([[1], [0]])
    terms = entropy_terms(posteriors, labels, np.array([math.log(2)]))
    assert torch.allclose(terms["conditional_entropy"][:, 0], torch.tensor([math.log(2), 0.0], dtype=torch.float64))
    assert torch.allclose(terms["exact"][:, 0], torch.tensor([0.0, math.log(2)], dtype=torch.float64))
    assert torch.allclose(terms["bayes_accuracy"][:, 0], torch.tensor([0.5, 1.0], dtype=torch.float64))
    assert torch.allclose(terms["log_likelihood"][:, 0], torch.tensor([-math.log(2), 0.0], dtype=torch.float64))


def test_stratified_draws_visit_every_row_in_turn(data):
    images, labels, values = data
    mixture = FiniteMixture(images, labels, values, rows=np.arange(10))
    draws = list(mixture.draws(points=5, samples=6, generator=torch.Generator().manual_seed(0)))
    first_pixel = mixture.gather(np.arange(10)).flatten(1)[:, :2]  # tells the 10 images apart

    def rows_of(draw):
        return (draw.x0.flatten(1)[:, None, :2] == first_pixel[None]).all(-1).long().argmax(1)

    assert len(torch.unique(first_pixel, dim=0)) == 10
    counts = torch.bincount(torch.cat([rows_of(d) for d in draws]), minlength=10)
    assert torch.all(counts == 3)  # 30 draws over 10 rows: each exactly 3 times
    assert all(len(torch.unique(rows_of(d))) == 6 for d in draws)  # no row twice within a batch


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda im, lab, val: FiniteMixture(im, lab[:, :1] * 0, val), "factor 0 takes one value"),
        (lambda im, lab, val: FiniteMixture(im, lab[:5], val), "does not match 40 images"),
        (lambda im, lab, val: FiniteMixture(im, lab, val, rows=np.array([], dtype=int)), "at least one image"),
    ],
)
def test_bad_input_is_refused(data, make, message):
    with pytest.raises(ValueError, match=message):
        make(*data)


def test_a_condition_no_image_meets_is_refused(data):
    images, labels, values = data
    mixture = FiniteMixture(images, labels, values)
    one = torch.ones(1, dtype=torch.float64)
    with pytest.raises(ValueError, match="matches no image"):
        mixture.conditional_mean(
            torch.zeros(1, 2, 3, 3), one, one, torch.tensor([[7.0, 0.0]]), torch.tensor([[True, False]])
        )


def test_gaussian_mi_of_one_scalar_factor():
    """X_0 = a Y + n in one dimension: I(Y; X_t) = 1/2 log(1 + alpha^2 a^2 / (alpha^2 s^2 + sigma^2))."""
    sde, a, s2 = VPSDE(), 2.0, 0.3
    task = GaussianTask("scalar", np.array([[a]]), np.eye(1), np.array([[s2]]))
    for t in (1e-3, 0.3, 1.0):
        ts = torch.tensor([t], dtype=torch.float64)
        alpha2, sigma2 = float(sde.alpha(ts)) ** 2, float(sde.sigma(ts)) ** 2
        expected = 0.5 * math.log(1 + alpha2 * a**2 / (alpha2 * s2 + sigma2))
        assert task.mutual_information(sde, t)[0] == pytest.approx(expected, rel=1e-12)


def test_gaussian_epsilon_is_the_posterior_mean_of_the_noise():
    """E[eps | X_t = x, Y_S = y_S] by regression on simulated draws matches the closed form."""
    sde = VPSDE()
    rng = np.random.default_rng(0)
    task = GaussianTask("two", rng.normal(0, 1, (3, 2)), np.array([[1.0, 0.5], [0.5, 1.0]]), 0.2 * np.eye(3))
    draw = next(task.draws(1, 200_000, torch.Generator().manual_seed(0)))
    t = 0.4
    ts = torch.full((len(draw.x0),), t, dtype=torch.float64)
    noise = torch.randn(draw.x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = sde.marginal(draw.x0, ts, noise)
    model = GaussianEpsilon(sde, task)
    for keep in ([False, False], [True, False], [True, True]):
        kept = torch.tensor([keep] * len(x))
        eps, _ = model(x, ts, draw.values.double(), kept)
        # The exact eps is linear in (x, y_S): regressing the true noise on them gives it back.
        inputs = torch.cat([x, draw.values.double()[:, kept[0]]], dim=1)
        fitted = inputs @ torch.linalg.lstsq(inputs, noise).solution
        assert torch.allclose(eps, fitted, atol=0.02)


@pytest.mark.parametrize("task", gaussian_suite(), ids=lambda task: task.name)
def test_gaussian_mi_agrees_with_the_joint_covariance_formula(task):
    """I(Y_k; X_t) = 1/2 log(det Cov(X_t) Var(Y_k) / det Cov(X_t, Y_k)), the form benchmark-mi uses."""
    sde = VPSDE()
    for t in (1e-3, 0.5):
        for k in range(task.n_factors):
            joint = task.joint_covariance(sde, t, k)
            logdet = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
            expected = 0.5 * (logdet(joint[:-1, :-1]) + logdet(joint[-1:, -1:]) - logdet(joint))
            assert task.mutual_information(sde, t)[k] == pytest.approx(expected, rel=1e-9, abs=1e-12)
