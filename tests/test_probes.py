"""Linear probes: a linear target is recovered, noise is not, and the split is by trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from latent_abstractions.probes import held_out_accuracy, held_out_r2, r_squared, split_trajectories


def test_split_is_disjoint_and_sized():
    train, test = split_trajectories(40, 0.25, seed=3)
    assert not np.any(train & test) and np.all(train | test)
    assert test.sum() == 10
    with pytest.raises(ValueError, match="at least 2 trajectories"):
        split_trajectories(1, 0.25, seed=0)


def test_linear_target_gives_r2_near_one_and_noise_near_zero():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 20))
    target = features @ rng.normal(size=20) + 0.01 * rng.normal(size=400)
    train, test = split_trajectories(400, 0.25, seed=0)
    assert held_out_r2(features, target, train, test, ridge=1e-4) > 0.99
    noise = rng.normal(size=400)
    assert held_out_r2(features, noise, train, test, ridge=1e-4) < 0.1


def test_r_squared_definition():
    target = np.array([1.0, 2.0, 3.0])
    assert r_squared(target, target) == 1.0
    assert r_squared(target, np.full(3, 2.0)) == 0.0
    assert r_squared(target, np.array([3.0, 2.0, 1.0])) == pytest.approx(-3.0)


def test_linear_classifier_accuracy():
    rng = np.random.default_rng(1)
    classes = rng.integers(0, 3, size=300)
    centres = rng.normal(size=(3, 10)) * 3
    features = centres[classes] + rng.normal(size=(300, 10))
    train, test = split_trajectories(300, 0.3, seed=0)
    assert held_out_accuracy(features, classes, train, test, ridge=1e-3) > 0.95
    shuffled = rng.permutation(classes)
    assert held_out_accuracy(features, shuffled, train, test, ridge=1e-3) < 0.55
