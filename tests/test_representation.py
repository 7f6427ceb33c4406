"""Order measures of a representation: an ordered 2-D manifold scores high, noise low."""

from __future__ import annotations

import numpy as np

from latent_abstractions import representation


def grid(n: int = 8) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def test_an_ordered_manifold_is_recognised():
    positions = grid()
    rng = np.random.default_rng(0)
    lift = rng.standard_normal((2, 32))  # a linear 2-D sheet in 32 dimensions, slightly noisy
    activations = positions @ lift + 0.01 * rng.standard_normal((len(positions), 32))
    result = representation.measure(activations, positions)
    assert result["r2_pca"] > 0.99 and result["trustworthiness"] > 0.95
    assert 1.5 < result["effective_dimension"] < 2.5


def test_noise_has_no_order():
    positions = grid()
    activations = np.random.default_rng(1).standard_normal((len(positions), 32))
    result = representation.measure(activations, positions)
    assert result["r2_pca"] < 0.3 and result["effective_dimension"] > 10


def test_phases():
    assert representation.phase(0.8, 0.0, 0.0) == "A"
    assert representation.phase(0.1, 0.5, 0.95) == "B"
    assert representation.phase(0.0, 0.95, 0.5) == "B"
    assert representation.phase(0.0, 0.95, 0.95) == "C"
