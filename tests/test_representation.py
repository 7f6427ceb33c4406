"""Order measures of a representation: an ordered 2-D manifold reads as ordered however it
is curved; the same vectors shuffled, or noise, read as disordered."""

from __future__ import annotations

import numpy as np
import pytest

from latent_abstractions.analysis import representation


def grid(n: int = 12) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def swiss_roll(positions: np.ndarray, dimensions: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth non-linear embedding of the grid: x rolled into one turn of a spiral (its
    turns kept further apart than neighbouring conditions), y straight, the 3-D roll sent
    into ``dimensions`` by a random rotation, plus a little noise."""
    rng = np.random.default_rng(seed)
    u = positions[:, 0] / positions[:, 0].max()
    angle = np.pi * (1 + 2 * u)
    roll = np.stack([0.4 * angle * np.cos(angle), positions[:, 1], 0.4 * angle * np.sin(angle)], axis=1)
    rotation, _ = np.linalg.qr(rng.standard_normal((dimensions, dimensions)))
    return roll @ rotation[:3] + 0.01 * rng.standard_normal((len(positions), dimensions))


def test_a_curved_ordered_manifold_reads_as_ordered_where_a_linear_pca_map_fails():
    positions = grid()
    result = representation.measure(swiss_roll(positions), positions)
    assert result["knn_r2"] > 0.97 and representation.is_ordered(result["knn_r2"])
    assert result["trustworthiness"] > 0.9 and result["continuity"] > 0.9
    assert result["r2_pca"] < 0.8  # the old test of order would call it disordered


def test_the_same_vectors_permuted_read_as_disordered():
    positions = grid()
    activations = swiss_roll(positions)[np.random.default_rng(1).permutation(len(positions))]
    result = representation.measure(activations, positions)
    assert result["knn_r2"] < 0.2 and not representation.is_ordered(result["knn_r2"])
    assert result["trustworthiness"] < 0.7


def test_noise_reads_as_disordered():
    positions = grid()
    activations = np.random.default_rng(2).standard_normal((len(positions), 64))
    result = representation.measure(activations, positions)
    assert result["knn_r2"] < 0.2 and not representation.is_ordered(result["knn_r2"])
    assert result["effective_dimension"] > 10


def test_whole_maps_are_flattened_per_condition():
    """(n, C, H, W) maps: a map that carries the position as a moving blob is ordered."""
    positions = grid()
    rows, cols = np.mgrid[0:12, 0:12]
    maps = np.exp(
        -((rows[None] - positions[:, 1, None, None]) ** 2 + (cols[None] - positions[:, 0, None, None]) ** 2) / 4.0
    )[:, None]
    assert maps.shape == (144, 1, 12, 12)
    assert representation.measure(maps, positions)["knn_r2"] > 0.95
    pooled = maps.mean(axis=(2, 3))  # the spatial mean throws the position away
    assert representation.knn_r2(pooled + 1e-9 * np.arange(144)[:, None], positions).mean() < 0.5


def test_the_leave_one_out_regression_never_sees_the_point_itself():
    positions = grid(6)
    # Activations that are the positions themselves, one far away: it must be predicted
    # from its neighbours, not from itself.
    activations = positions.copy()
    activations[0] = [100.0, 100.0]
    r2 = representation.knn_r2(activations, positions, neighbours=1)
    assert r2.mean() < 1.0


def test_too_few_conditions_are_refused():
    with pytest.raises(ValueError, match="need more than [0-9]+ conditions"):
        representation.measure(np.zeros((10, 4)), grid(4)[:10])


def test_the_representation_phase_reads_geometry_alone():
    assert representation.representation_phase(8.0, 0.99) == "A"  # ordered but not 2-D
    assert representation.representation_phase(float("nan"), 0.99) == "A"
    assert representation.representation_phase(2.1, 0.2) == "B"
    assert representation.representation_phase(2.1, 0.95) == "C"


def test_phases_in_order():
    assert representation.phases_in_order(["A", "A", "B", "C", "C"])
    assert not representation.phases_in_order(["A", "B", "B"])  # never reaches C
    assert not representation.phases_in_order(["A", "C", "B", "C"])  # goes back


def smooth_embedding(latent: np.ndarray, dimensions: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random map of ``latent`` (n, d) into ``dimensions``: random low-frequency
    sinusoids of the latent, scaled to [0, 1] per coordinate."""
    rng = np.random.default_rng(seed)
    scaled = (latent - latent.min(axis=0)) / np.ptp(latent, axis=0)
    frequencies = rng.normal(0.0, 1.5, (latent.shape[1], dimensions))
    return np.sin(scaled @ frequencies + rng.uniform(0, 2 * np.pi, dimensions))


CONSTRUCTED = {
    "a smooth 2-D embedding of the grid": (lambda p: smooth_embedding(p), "C"),
    "the same manifold with its labels permuted": (
        lambda p: smooth_embedding(p)[np.random.default_rng(1).permutation(len(p))],
        "B",
    ),
    "isotropic noise": (lambda p: np.random.default_rng(2).standard_normal((len(p), 64)), "A"),
    "a 6-D smooth random embedding": (
        lambda p: smooth_embedding(np.column_stack([p, np.random.default_rng(3).uniform(0, 12, (len(p), 4))])),
        "A",
    ),
}


@pytest.mark.parametrize("name", CONSTRUCTED)
def test_constructed_representations_get_the_phase_their_geometry_defines(name):
    build, expected = CONSTRUCTED[name]
    positions = grid()
    result = representation.measure(build(positions), positions)
    label = representation.representation_phase(result["intrinsic_dimension"], result["knn_r2"])
    assert label == expected, f"{name}: dimension {result['intrinsic_dimension']:.2f}, kNN R² {result['knn_r2']:.2f}"


def test_the_intrinsic_dimension_reads_a_curved_sheet_as_two_and_a_six_d_cloud_above_three():
    positions = grid()
    assert 1.5 < representation.intrinsic_dimension(swiss_roll(positions)) < representation.TWO_D
    six = smooth_embedding(np.random.default_rng(4).uniform(0, 1, (400, 6)))
    assert representation.intrinsic_dimension(six) > 4.0


def test_generation_behaviour_reads_the_samples_alone():
    assert representation.generation_behaviour(0.7, 0.0) == "A"
    assert representation.generation_behaviour(0.1, 0.3) == "B"
    assert representation.generation_behaviour(0.0, 0.95) == "C"


def test_a_representation_that_ignores_its_condition_reads_as_no_structure():
    positions = grid()
    result = representation.measure(np.ones((len(positions), 8)), positions)
    assert np.isnan(result["intrinsic_dimension"]) and np.isnan(result["r2_isomap"])
    assert representation.representation_phase(result["intrinsic_dimension"], result["knn_r2"]) == "A"
