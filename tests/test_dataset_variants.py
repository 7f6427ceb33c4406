"""Bumps variants, split policies and the real-Shapes3D-file loader (on a small file
written here in that format)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from latent_abstractions.core import pixels
from latent_abstractions.datasets import base, bumps, shapes, shapes3d_file, splits


def test_imbalanced_lattice_spacings():
    dataset = bumps.make(height=16, width=16, sigma=1.0, spacing_x=0.5, spacing_y=4.0, margin=2.0)
    assert dataset.factor("x").cardinality == 23 and dataset.factor("y").cardinality == 3
    assert len(dataset.images) == 23 * 3


def test_continuous_centres_are_seeded_draws_with_nearest_bins():
    a = bumps.make(16, 16, 1.0, 2.0, 2.0, 2.0, centres="continuous", count=50, seed=4)
    b = bumps.make(16, 16, 1.0, 2.0, 2.0, 2.0, centres="continuous", count=50, seed=4)
    assert np.array_equal(a.images, b.images) and len(a.images) == 50
    x = a.factors["x"].to_numpy()
    assert x.min() >= 2.0 and x.max() <= 13.0 and len(np.unique(x)) == 50
    nearest = np.asarray(a.factor("x").values)[a.factors["x_bin"]]
    assert np.all(np.abs(nearest - x) <= 1.0 + 1e-9)  # half the spacing


def test_stripe_profile_varies_along_x_only():
    dataset = bumps.make(12, 16, 1.5, 1.0, 1.0, 2.0, profile="stripe")
    assert [f.name for f in dataset.factor_table] == ["x"]
    image = dataset.images[3, 0]
    assert np.allclose(image, image[0][None, :])  # every row the same
    assert image[0].argmax() == dataset.factors["x"][3]


@pytest.mark.parametrize("region, expected_test", [("centre", 16), ("corner", 9), ("stripe", 48)])
def test_region_splits(region, expected_test):
    dataset = bumps.make(16, 16, 1.0, 1.0, 1.0, 2.0)  # 12 x 12 centres, 2..13
    split = splits.split_column(dataset.factors, dataset.factor_table, {"kind": "region", "region": region, "size": 3})
    test = dataset.factors[split == "test"]
    assert len(test) == expected_test
    if region == "centre":
        assert set(test["x"]) == set(test["y"]) == {6.0, 7.0, 8.0, 9.0}
    if region == "corner":
        assert set(test["x"]) == set(test["y"]) == {2.0, 3.0, 4.0}


def test_combination_split_holds_out_exactly_the_listed_combination():
    dataset = shapes.make(
        8, {"floor_hue": [0], "wall_hue": [0], "object_hue": [0, 1], "scale": [0], "orientation": [0]}
    )
    split = splits.split_column(
        dataset.factors,
        dataset.factor_table,
        {"kind": "combinations", "held_out": {"shape": [2.0], "object_hue": [0.0]}},
    )
    held = dataset.factors[split == "test"]
    assert len(held) == 1 and held["shape"].iloc[0] == 2.0 and held["object_hue"].iloc[0] == 0.0


@pytest.mark.parametrize(
    "policy, message",
    [
        ({"kind": "region", "region": "centre", "size": 0.1}, "held-out set is empty"),
        ({"kind": "combinations", "held_out": {"colour": [1.0]}}, "unknown factor 'colour'"),
        ({"kind": "combinations", "held_out": {"x": [100.0]}}, r"values \[100.0\] not in the data set"),
    ],
)
def test_bad_splits_are_named(policy, message):
    dataset = bumps.make(16, 16, 1.0, 2.0, 2.0, 2.5)
    with pytest.raises(splits.SplitError, match=message):
        splits.split_column(dataset.factors, dataset.factor_table, policy)


def test_train_rows_follow_the_split():
    dataset = bumps.make(16, 16, 1.0, 1.0, 1.0, 2.0)
    dataset.factors["split"] = splits.split_column(
        dataset.factors, dataset.factor_table, {"kind": "random", "test_fraction": 0.25, "seed": 0}
    )
    assert len(dataset.train_rows()) == 108
    assert set(dataset.factors["split"].iloc[dataset.train_rows()]) == {"train"}


def write_shapes3d_file(path, indices: np.ndarray) -> np.ndarray:
    """A small file in the real layout: images uint8 (N, 64, 64, 3), labels float (N, 6) of values."""
    images = shapes.render(indices, 64)
    labels = np.stack(
        [np.asarray(shapes.FACTOR_VALUES[n])[indices[:, k]] for k, n in enumerate(shapes.FACTOR_NAMES)], axis=1
    )
    with h5py.File(path, "w") as handle:
        handle["images"] = images
        handle["labels"] = labels
    return images


@pytest.fixture
def small_file(tmp_path):
    indices = shapes.all_indices(
        {"floor_hue": [1, 4], "wall_hue": [0], "object_hue": [2, 9], "scale": [3], "shape": [0, 3], "orientation": [7]}
    )
    path = tmp_path / "3dshapes.h5"
    return path, indices, write_shapes3d_file(path, indices)


def test_shapes3d_file_streams_into_the_common_form(small_file, tmp_path, monkeypatch):
    path, indices, images = small_file
    monkeypatch.setattr(shapes3d_file, "CHUNK", 3)  # several chunks, one partial
    folder = tmp_path / "dataset"
    count = shapes3d_file.import_file(path, folder, {"shape": [3]}, {"kind": "none"}, {"step": "test"})
    dataset = base.load(folder)
    keep = indices[:, 4] == 3
    assert count == keep.sum() == len(dataset.images) == 4
    assert dataset.images.dtype == np.uint8 and dataset.images.shape == (4, 3, 64, 64)
    assert np.array_equal(dataset.images, np.moveaxis(images[keep], -1, 1))
    assert dataset.factor("floor_hue").values == (0.1, 0.4)
    assert list(dataset.factors["floor_hue_bin"]) == [0, 0, 1, 1]  # indexes the values present
    assert set(dataset.factors["shape"]) == {3.0}
    assert dataset.factors["split"].eq("train").all()
    model = pixels.model_range(dataset.images)
    assert model.dtype == np.float32 and model.min() >= -1 and model.max() <= 1


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda h: h.__delitem__("labels"), "no dataset 'labels'"),
        (
            lambda h: (h.__delitem__("images"), h.create_dataset("images", data=np.zeros((8, 64, 64), np.uint8))),
            r"images is uint8 \(8, 64, 64\), expected uint8 \(N, 64, 64, 3\)",
        ),
        (
            lambda h: (h.__delitem__("images"), h.create_dataset("images", data=np.zeros((8, 63, 63, 3), np.uint8))),
            r"images is uint8 \(8, 63, 63, 3\), expected uint8 \(N, 64, 64, 3\)",
        ),
        (
            lambda h: (h.__delitem__("labels"), h.create_dataset("labels", data=np.zeros((8, 5)))),
            r"labels is \(8, 5\), expected \(8, 6\)",
        ),
        (lambda h: h["labels"].__setitem__((0, 3), 0.3), "label scale = 0.3 is not a Shapes3D value"),
        (lambda h: h["labels"].__setitem__((2, 0), np.nan), "a label floor_hue is nan, not a Shapes3D value"),
        (
            lambda h: (h.__delitem__("labels"), h.create_dataset("labels", data=np.full((8, 6), b"red"))),
            r"labels are \|S3, expected numbers",
        ),
        (
            lambda h: (h.__delitem__("labels"), h.create_dataset("labels", shape=(8, 6), dtype="f8")),
            r"labels declares 8 rows \(384 bytes\) but stores 0 bytes",
        ),
    ],
)
def test_malformed_files_are_named_and_nothing_is_written(small_file, tmp_path, corrupt, message):
    path, _, _ = small_file
    with h5py.File(path, "a") as handle:
        corrupt(handle)
    folder = tmp_path / "dataset"
    with pytest.raises(shapes3d_file.Shapes3DFileError, match=message):
        shapes3d_file.import_file(path, folder, None, {"kind": "none"}, {})
    assert not folder.exists() or not any(folder.iterdir())


def test_not_hdf5_and_missing(tmp_path):
    junk = tmp_path / "3dshapes.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(shapes3d_file.Shapes3DFileError, match="not a readable HDF5 file"):
        shapes3d_file.import_file(junk, tmp_path / "d", None, {"kind": "none"}, {})
    with pytest.raises(shapes3d_file.Shapes3DFileError, match="Shapes3D file not found"):
        shapes3d_file.import_file(tmp_path / "nope.h5", tmp_path / "d", None, {"kind": "none"}, {})


def test_empty_held_out_split_writes_nothing(small_file, tmp_path):
    path, _, _ = small_file
    folder = tmp_path / "dataset"
    with pytest.raises(splits.SplitError, match="held-out set is empty"):
        shapes3d_file.import_file(path, folder, None, {"kind": "random", "test_fraction": 0.01, "seed": 0}, {})
    assert not folder.exists() or not any(folder.iterdir())


def test_restricted_factor_table():
    dataset = bumps.make(16, 16, 1.0, 2.0, 2.0, 2.0)
    only_y = dataset.restricted(["y"])
    assert [f.name for f in only_y.factor_table] == ["y"]
    assert only_y.condition_values().shape == (len(dataset.images), 1)
    assert np.array_equal(only_y.condition_values()[:, 0], dataset.factors["y"])
    assert dataset.restricted([]) is dataset
    with pytest.raises(ValueError, match="unknown factor colour; the dataset has: x, y"):
        dataset.restricted(["colour"])
