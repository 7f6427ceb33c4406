"""The Shapes3D-like renderer: factors, rendering, determinism, distinctness, make()."""

from __future__ import annotations

import colorsys
import hashlib

import numpy as np
import pytest

from latent_abstractions.core import pixels
from latent_abstractions.datasets import shapes

NAMES = shapes.FACTOR_NAMES
CARDINALITIES = {"floor_hue": 10, "wall_hue": 10, "object_hue": 10, "scale": 8, "shape": 4, "orientation": 15}


def hue_of(pixel: np.ndarray) -> float:
    return colorsys.rgb_to_hsv(*(np.asarray(pixel, dtype=float) / 255.0))[0]


def hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 1.0
    return min(d, 1.0 - d)


def test_factors_match_shapes3d():
    assert NAMES == tuple(CARDINALITIES)
    assert {name: len(shapes.FACTOR_VALUES[name]) for name in NAMES} == CARDINALITIES
    assert shapes.FACTOR_VALUES["floor_hue"] == pytest.approx([i / 10 for i in range(10)])
    assert shapes.FACTOR_VALUES["scale"] == pytest.approx(np.linspace(0.75, 1.25, 8))
    assert shapes.FACTOR_VALUES["shape"] == (0.0, 1.0, 2.0, 3.0)
    assert shapes.FACTOR_VALUES["orientation"] == pytest.approx(np.linspace(-30, 30, 15))
    indices = shapes.all_indices()
    assert indices.shape == (480_000, 6) and np.issubdtype(indices.dtype, np.integer)
    assert indices[:3].tolist() == [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 2]]
    assert indices[15].tolist() == [0, 0, 0, 0, 1, 0]  # last factor fastest
    assert indices[-1].tolist() == [9, 9, 9, 7, 3, 14]
    expected = np.stack(np.unravel_index(np.arange(480_000), tuple(CARDINALITIES.values())), axis=1)
    assert np.array_equal(indices, expected)


def test_subset_indices_are_the_row_major_factorial():
    indices = shapes.all_indices({"shape": [2, 0], "orientation": [14, 3, 3], "wall_hue": [5]})
    assert indices.shape == (10 * 1 * 10 * 8 * 2 * 2, 6)
    assert set(indices[:, 1]) == {5} and set(indices[:, 4]) == {0, 2} and set(indices[:, 5]) == {3, 14}
    assert indices[:4, 4:].tolist() == [[0, 3], [0, 14], [2, 3], [2, 14]]  # sorted, deduplicated
    assert len({tuple(row) for row in indices}) == len(indices)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("shape", range(4))
def test_changing_any_single_factor_changes_the_image(size, shape):
    reference = np.array([1, 4, 7, 3, shape, 7])
    rows = [reference]
    for column, name in enumerate(NAMES):
        for value in range(CARDINALITIES[name]):
            if value != reference[column]:
                row = reference.copy()
                row[column] = value
                rows.append(row)
    images = shapes.render(np.array(rows), size).astype(np.int16)
    assert images.shape == (len(rows), size, size, 3) and len(rows) == 1 + sum(c - 1 for c in CARDINALITIES.values())
    changed = (np.abs(images[1:] - images[0]).max(axis=-1) > 8).reshape(len(rows) - 1, -1).sum(axis=1)
    # every change is visible: at least 1% of the pixels move by more than 8 levels
    assert changed.min() >= 0.01 * size * size, dict(zip(map(tuple, rows[1:]), changed))


@pytest.mark.parametrize("shape", range(4))
def test_orientation_moves_the_scene_for_every_shape(shape):
    """The camera orbits: the corner and floor/wall boundary move even for the sphere."""
    images = shapes.render(np.array([[1, 4, 7, 3, shape, o] for o in range(15)]), 32).astype(np.int16)
    steps = (np.abs(np.diff(images, axis=0)).max(axis=-1) > 8).reshape(14, -1).sum(axis=1)
    assert steps.min() >= 20
    top_rows = np.abs(np.diff(images[:, :4], axis=0)).max(axis=(1, 2, 3))  # the wall, far from the object
    assert top_rows.min() > 0


def test_all_combinations_are_distinct():
    indices = shapes.all_indices({"floor_hue": [0, 5], "wall_hue": [2, 7], "object_hue": [3, 8]})
    assert len(indices) == 8 * 8 * 4 * 15
    images = shapes.render(indices, 64)
    digests = {hashlib.sha256(image.tobytes()).hexdigest() for image in images}
    assert len(digests) == len(indices)


def test_rendering_is_deterministic_and_independent_of_batching():
    indices = shapes.all_indices({"floor_hue": [0, 9], "wall_hue": [3], "object_hue": [6, 1], "scale": [0, 7]})
    first = shapes.render(indices, 64)
    assert np.array_equal(first, shapes.render(indices, 64))
    pieces = np.concatenate([shapes.render(indices[a:b], 64) for a, b in [(0, 1), (1, 8), (8, 103), (103, None)]])
    assert np.array_equal(first, pieces)
    singles = np.concatenate([shapes.render(indices[i : i + 1], 64) for i in range(0, len(indices), 37)])
    assert np.array_equal(first[::37], singles)
    order = np.random.default_rng(0).permutation(len(indices))
    assert np.array_equal(first[order], shapes.render(indices[order], 64))


def test_geometry_recomputed_from_scratch_is_identical():
    cached = shapes._weights(32)
    assert not cached.flags.writeable
    assert np.array_equal(cached, shapes._weights.__wrapped__(32))


@pytest.mark.parametrize("size", [8, 13, 16, 32])
def test_any_size_from_eight(size):
    images = shapes.render(np.array([[0, 3, 6, 7, 0, 0], [9, 9, 9, 0, 3, 14]]), size)
    assert images.shape == (2, size, size, 3) and images.dtype == np.uint8
    assert not np.array_equal(images[0], images[1])


@pytest.mark.parametrize("size", [16, 64])
def test_hues_are_where_the_object_floor_and_wall_are(size):
    for floor, wall, obj in [(0, 4, 7), (3, 9, 0), (6, 1, 2)]:
        indices = shapes.all_indices({"floor_hue": [floor], "wall_hue": [wall], "object_hue": [obj]})
        images = shapes.render(indices, size)  # every shape, scale and orientation
        hues = shapes.FACTOR_VALUES["floor_hue"]
        for image in images:
            assert hue_distance(hue_of(image[size // 2, size // 2]), hues[obj]) < 0.01  # the object's middle
            assert hue_distance(hue_of(image[0, 0]), hues[wall]) < 0.01  # top-left: wall
            assert hue_distance(hue_of(image[-1, 0]), hues[floor]) < 0.01  # bottom-left: floor
        centre = images[:, size // 2, size // 2].astype(float)
        assert centre.max(axis=1).min() > 60  # shaded, never black


def test_scene_layout_wall_above_floor_and_object_shaded():
    image = shapes.render(np.array([[0, 6, 3, 7, 2, 7]]), 64)[0]  # red floor, blue wall, green sphere
    hues = np.array([[hue_of(pixel) for pixel in row] for row in image])
    assert np.all(np.abs(hues[:8] - 0.6) < 0.01)  # wall on top
    assert np.all(np.minimum(hues[-8:], 1 - hues[-8:]) < 0.01)  # floor below
    brightness = image.max(axis=-1).astype(int)
    assert brightness[-1, 2] < brightness[40, 2] - 10  # the floor darkens toward the camera
    sphere = brightness[np.abs(hues - 0.3) < 0.01]
    assert len(sphere) > 100 and sphere.max() - sphere.min() > 80  # a shaded disc, not a flat one


def test_make_is_the_rendered_factorial_as_a_dataset():
    subset = {"floor_hue": [1, 8], "wall_hue": [0], "object_hue": [4], "scale": [7, 2], "orientation": [0, 14]}
    dataset = shapes.make(size=16, subset=subset)
    indices = shapes.all_indices(subset)
    n = 2 * 1 * 1 * 2 * 4 * 2
    assert dataset.images.shape == (n, 3, 16, 16) and dataset.images.dtype == np.uint8
    assert np.array_equal(dataset.images, shapes.render(indices, 16).transpose(0, 3, 1, 2))
    model = pixels.model_range(dataset.images)
    assert model.dtype == np.float32 and model.min() >= -1.0 and model.max() <= 1.0
    assert list(dataset.factors.columns) == list(NAMES) + [f"{name}_bin" for name in NAMES]
    for k, name in enumerate(NAMES):
        factor = dataset.factor(name)
        bins = dataset.factors[f"{name}_bin"].to_numpy()  # index into the values present
        assert np.allclose(np.asarray(factor.values)[bins], np.asarray(shapes.FACTOR_VALUES[name])[indices[:, k]])
        assert np.allclose(dataset.factors[name], np.asarray(shapes.FACTOR_VALUES[name])[indices[:, k]])
        assert factor.kind == "categorical"
        chosen = sorted(subset.get(name, range(CARDINALITIES[name])))
        assert factor.values == tuple(shapes.FACTOR_VALUES[name][i] for i in chosen)
    assert dataset.factor("scale").values == pytest.approx([shapes.FACTOR_VALUES["scale"][i] for i in (2, 7)])
    assert dataset.factor("shape").values == (0.0, 1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    "subset, factor",
    [
        ({"colour": [0]}, "colour"),
        ({"scale": [8]}, "scale"),
        ({"orientation": [-1]}, "orientation"),
        ({"shape": [4]}, "shape"),
        ({"floor_hue": []}, "floor_hue"),
        ({"object_hue": [1.5]}, "object_hue"),
    ],
)
def test_bad_subsets_name_the_factor(subset, factor):
    for call in (shapes.all_indices, lambda s: shapes.make(size=8, subset=s)):
        with pytest.raises(ValueError, match=factor) as error:
            call(subset)
        assert "\n" not in str(error.value)


def test_render_rejects_bad_input():
    with pytest.raises(ValueError, match="wall_hue"):
        shapes.render(np.array([[0, 10, 0, 0, 0, 0]]), 16)
    with pytest.raises(ValueError, match="orientation"):
        shapes.render(np.array([[0, 0, 0, 0, 0, 15]]), 16)
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        shapes.render(np.zeros((2, 5), dtype=int), 16)
    with pytest.raises(ValueError, match="size"):
        shapes.render(np.zeros((1, 6), dtype=int), 7)
    assert shapes.render(np.zeros((0, 6), dtype=int), 16).shape == (0, 16, 16, 3)
