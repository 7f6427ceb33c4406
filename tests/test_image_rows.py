"""Image rows: a gather in file order equals plain indexing, stored images map to [-1, 1]
in the dtype asked for, and rows kept on a device are read from there."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent_abstractions.core.image_rows import ImageRows
from latent_abstractions.core.pixels import model_range

ROWS = np.array([9, 3, 14, 3, 0, 7])
POSITIONS = np.array([5, 0, 3, 1, 1, 4, 2])


@pytest.fixture
def stored(tmp_path) -> np.ndarray:
    """A memory-mapped uint8 image array, as data sets keep theirs."""
    images = np.random.default_rng(0).integers(0, 256, (16, 3, 4, 5), dtype=np.uint8)
    images[0], images[1] = 0, 255  # the two ends of the range
    np.save(tmp_path / "images.npy", images)
    return np.load(tmp_path / "images.npy", mmap_mode="r")


def test_a_gather_in_file_order_equals_plain_indexing(stored):
    expected = np.asarray(stored)[ROWS[POSITIONS]]
    for images in (stored, torch.from_numpy(np.array(stored))):
        rows = ImageRows(images, ROWS)
        assert len(rows) == len(ROWS) and rows.image_shape == (3, 4, 5)
        np.testing.assert_array_equal(rows.read(POSITIONS).numpy(), expected)
        np.testing.assert_array_equal(rows.read_span(2, 5).numpy(), np.asarray(stored)[ROWS[2:5]])
    np.testing.assert_array_equal(ImageRows(stored).read(np.array([15, 2])).numpy(), np.asarray(stored)[[15, 2]])


def test_stored_images_map_to_the_model_range_in_the_dtype_asked_for(stored):
    rows = ImageRows(stored)
    single = rows.gather(np.arange(16), "cpu")
    assert single.dtype == torch.float32 and float(single.min()) == -1.0 and float(single.max()) == 1.0
    np.testing.assert_array_equal(single.numpy(), model_range(np.asarray(stored)))
    double = rows.span(0, 16, "cpu", torch.float64)
    assert double.dtype == torch.float64
    np.testing.assert_array_equal(double.numpy(), np.asarray(stored).astype(np.float64) / 127.5 - 1.0)
    floats = np.asarray(stored).astype(np.float64) / 127.5 - 1.0
    as_read = ImageRows(floats, ROWS, float_dtype=torch.float32).read(POSITIONS)
    assert as_read.dtype == torch.float32  # floats read as float32; uint8 stays uint8
    assert ImageRows(stored, ROWS, float_dtype=torch.float32).read(POSITIONS).dtype == torch.uint8
    assert ImageRows(floats).read(POSITIONS).dtype == torch.float64  # as stored


def test_rows_kept_on_a_device_are_read_from_there(stored):
    rows = ImageRows(stored, ROWS, float_dtype=torch.float32)
    assert rows.read_bytes == len(ROWS) * 3 * 4 * 5
    assert rows.keep_on("cpu", max_bytes=rows.read_bytes - 1).cache is None  # too large: read per batch
    from_storage, span_from_storage = rows.gather(POSITIONS, "cpu"), rows.span(1, 4, "cpu")
    rows.keep_on("cpu", rows_per_read=4)
    assert rows.cache is not None and rows.cache.dtype == torch.uint8
    np.testing.assert_array_equal(rows.cache.numpy(), np.asarray(stored)[ROWS])
    rows.images = None  # every read now comes from the cache
    assert torch.equal(rows.gather(POSITIONS, "cpu"), from_storage)
    assert torch.equal(rows.span(1, 4, "cpu"), span_from_storage)
