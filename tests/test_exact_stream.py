"""The one-pass exact information (exact_stream.py) against the float64 finite-mixture
posteriors it replaces in the exact order, on the same draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent_abstractions.analysis import exact_stream
from latent_abstractions.analysis.ground_truth import FiniteMixture, entropy_terms
from latent_abstractions.datasets import shapes
from latent_abstractions.diffusion.sde import VPSDE, log_snr_grid

CPU = torch.device("cpu")
# Two values of each factor, consecutive: close images, the hardest case for rounding.
SUBSET = {name: [0, 1] for name in shapes.FACTOR_NAMES}


@pytest.fixture(scope="module")
def scenes():
    data = shapes.make(16, SUBSET)
    return data.images, data.bins(), data.condition_values()


def pairs(mixture: FiniteMixture, count: int, seed: int = 1) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    positions = mixture.stratified_positions(1, count, generator)[0]
    x0 = mixture.gather(positions)
    return positions, x0, torch.randn(x0.shape, generator=generator, dtype=torch.float64)


def float64_posteriors(mixture, x0, noise, sde, t) -> torch.Tensor:
    ts = torch.full((len(x0),), t, dtype=torch.float64)
    alpha, sigma = sde.alpha(ts), sde.sigma(ts)
    x = alpha[:, None, None, None] * x0 + sigma[:, None, None, None] * noise
    return torch.cat(mixture.factor_posteriors(x, alpha, sigma), dim=1)


@pytest.mark.parametrize("stored", ["uint8", "float32"])
def test_posteriors_match_the_float64_mixture_at_every_time(scenes, stored):
    images, labels, values = scenes
    if stored == "float32":
        images = images.astype(np.float32) / 127.5 - 1.0
    mixture = FiniteMixture(images, labels, values)
    sde = VPSDE()
    positions, x0, noise = pairs(mixture, 12)
    times = log_snr_grid(sde, sde.T, 1e-3, 10)
    streamed, sizes = exact_stream.posteriors(
        mixture, positions, noise, (sde.alpha(times) / sde.sigma(times)) ** 2, CPU
    )
    assert sizes == mixture.cardinalities and streamed.shape == (10, 12, sum(sizes))
    for p, t in enumerate(times.tolist()):
        assert torch.allclose(streamed[p], float64_posteriors(mixture, x0, noise, sde, t), atol=1e-6, rtol=0)


def test_the_answer_does_not_depend_on_the_chunks(scenes, monkeypatch):
    mixture = FiniteMixture(*scenes)
    sde = VPSDE()
    whole = exact_stream.exact_information(sde, mixture, 1e-3, 6, 8, seed=2, device=CPU)
    monkeypatch.setattr(exact_stream, "CHUNK_LIMITS", (7, 7))  # 64 images in 10 chunks, the last short
    chunked = exact_stream.exact_information(sde, mixture, 1e-3, 6, 8, seed=2, device=CPU)
    assert np.allclose(whole.per_pair, chunked.per_pair, atol=1e-6)


def test_curves_are_each_times_mean_of_the_pairs_exact_terms(scenes):
    mixture = FiniteMixture(*scenes)
    sde = VPSDE()
    found = exact_stream.exact_information(sde, mixture, 1e-3, 5, 16, seed=4, device=CPU)
    positions, x0, noise = pairs(mixture, 16, seed=4)
    for p, t in enumerate(found.estimate.times):
        joint = float64_posteriors(mixture, x0, noise, sde, float(t))
        terms = entropy_terms(
            list(joint.split(mixture.cardinalities, dim=1)), mixture.labels[positions], mixture.entropy
        )
        assert np.allclose(found.per_pair[p], terms["exact"].numpy(), atol=1e-5)
        assert np.allclose(found.estimate.mean["exact"][p], terms["exact"].numpy().mean(0), atol=1e-5)
    entropy = mixture.entropy
    assert (found.estimate.mean["exact"] <= entropy + 1e-12).all()
    assert np.allclose(found.estimate.mean["exact"][-1], entropy, atol=1e-6)  # distinct images, t_end: decided
    assert (found.estimate.mean["exact"][0] < 0.01).all()  # at T nothing is decided


def test_a_bootstrap_replicate_resamples_whole_pairs():
    per_pair = np.zeros((3, 4, 2))
    per_pair[:, 1, :] = 1.0  # pair 1 is one at every time
    replicate = exact_stream.resample_pairs(per_pair, np.random.default_rng(0))
    assert replicate.shape == (3, 2)
    # pairs move together across times: every time of a replicate holds the same share of pair 1
    assert np.allclose(replicate, replicate[0]) and set(np.unique(replicate)) <= {0.0, 0.25, 0.5, 0.75, 1.0}
