"""Bump counting and centre fitting on rendered bumps with known centres."""

from __future__ import annotations

import numpy as np
import pytest

from latent_abstractions.analysis import generation_metrics as gm
from latent_abstractions.datasets import bumps


def test_single_bumps_are_found_where_they_were_drawn():
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(2, 13, 200), rng.uniform(2, 13, 200)
    images = bumps.render(xs, ys, 16, 16, sigma=1.0)
    assert (gm.count_bumps(images) == 1).all()
    x, y = gm.bump_centres(images)
    assert np.abs(x - xs).max() < 0.15 and np.abs(y - ys).max() < 0.15


def test_two_bumps_are_counted_and_an_empty_image_has_none():
    one = bumps.render([4.0], [4.0], 16, 16, 1.0)
    other = bumps.render([11.0], [10.0], 16, 16, 1.0)
    both = np.maximum(one, other)
    empty = -np.ones_like(one)
    assert gm.count_bumps(np.concatenate([both, empty, one])).tolist() == [2, 0, 1]


def test_accuracy_needs_one_bump_within_tolerance():
    images = bumps.render([5.0, 5.0], [5.0, 5.0], 16, 16, 1.0)
    result = gm.assess(images, requested_x=[5.0, 7.5], requested_y=[5.0, 5.0], tolerance=1.0)
    assert result["accurate"].tolist() == [True, False]
    assert result["accurate_y"].tolist() == [True, True] and result["accurate_x"].tolist() == [True, False]
    noisy = images + 0.02 * np.random.default_rng(1).standard_normal(images.shape)
    assert gm.assess(noisy, [5.0, 5.0], [5.0, 5.0])["accurate"].all()


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"expected bumps images \(N, 1, H, W\)"):
        gm.count_bumps(np.zeros((2, 3, 8, 8)))
