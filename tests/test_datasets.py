"""Gaussian bumps: lattice, rendering, factor table, and the on-disk round trip."""

from __future__ import annotations

import numpy as np
import pytest

from latent_abstractions.core.errors import InputError
from latent_abstractions.datasets import base, bumps


def test_lattice_respects_margin_and_spacing():
    assert np.allclose(bumps.lattice(16, 1.0, 2.0), np.arange(2, 14))
    assert np.allclose(bumps.lattice(16, 4.0, 1.0), [1, 5, 9, 13])
    assert np.allclose(bumps.lattice(16, 0.5, 7.0), [7.0, 7.5, 8.0])


def test_bump_peaks_at_its_centre_with_the_right_width():
    image = bumps.render(np.array([5.0]), np.array([9.0]), height=16, width=16, sigma=1.5)[0, 0]
    assert np.unravel_index(image.argmax(), image.shape) == (9, 5)  # (row = y, column = x)
    assert image.max() == pytest.approx(1.0) and image.min() == pytest.approx(-1.0, abs=1e-6)
    # one pixel away along x: 2 exp(-1 / (2 sigma^2)) - 1
    assert image[9, 6] == pytest.approx(2 * np.exp(-1 / (2 * 1.5**2)) - 1, rel=1e-5)


def test_dataset_covers_the_lattice_once():
    dataset = bumps.make(height=16, width=12, sigma=1.0, spacing_x=2.0, spacing_y=1.0, margin=2.0)
    x, y = dataset.factor("x"), dataset.factor("y")
    assert x.values == (2.0, 4.0, 6.0, 8.0) and y.cardinality == 12
    assert len(dataset.images) == x.cardinality * y.cardinality
    assert dataset.images.shape[1:] == (1, 16, 12)
    pairs = set(zip(dataset.factors["x"], dataset.factors["y"]))
    assert len(pairs) == len(dataset.images)
    assert np.array_equal(np.asarray(x.values)[dataset.factors["x_bin"]], dataset.factors["x"])
    with pytest.raises(KeyError, match="unknown factor 'colour'; the dataset has: x, y"):
        dataset.factor("colour")


def test_save_load_round_trip(tmp_path):
    dataset = bumps.make(height=8, width=8, sigma=1.0, spacing_x=1.0, spacing_y=2.0, margin=1.0)
    base.save(dataset, tmp_path, {"step": "test"})
    loaded = base.load(tmp_path)
    assert isinstance(loaded.images, np.memmap)
    assert np.array_equal(loaded.images, dataset.images)
    assert loaded.factors.equals(dataset.factors)
    assert loaded.factor_table == dataset.factor_table
    assert loaded.content_sha256 == dataset.content_sha256
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary left behind


def test_load_reports_missing_file(tmp_path):
    with pytest.raises(InputError, match="dataset file missing: .*images.npy"):
        base.load(tmp_path)
