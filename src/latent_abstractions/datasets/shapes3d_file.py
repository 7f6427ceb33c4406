"""The real Shapes3D file (``3dshapes.h5``: ``images`` uint8 N x 64 x 64 x 3, ``labels``
float N x 6 in the order floor hue, wall hue, object hue, scale, shape, orientation),
read through the same interface as the procedural scenes, streaming in chunks.

There is no download code: point params at a local copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..core.errors import InputError
from . import base, shapes, splits
from .registry import EXACT_ORDER, DatasetKind

CHUNK = 4096  # images per read: about 50 MB at 64 x 64 x 3
IMAGE_SHAPE = (64, 64, 3)  # every Shapes3D image; anything else is another file


class Shapes3DFileError(InputError):
    """The file is missing, unreadable, or not in the Shapes3D layout."""


def _open(path: Path):
    import h5py  # imported here: only this loader needs it

    if not path.is_file():
        raise Shapes3DFileError(f"Shapes3D file not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise Shapes3DFileError(f"{path}: not a readable HDF5 file ({exc})") from None
    for name in ("images", "labels"):
        if name not in handle:
            found = ", ".join(handle.keys()) or "none"
            handle.close()
            raise Shapes3DFileError(f"{path}: no dataset {name!r} (found: {found})")
    images, labels = handle["images"], handle["labels"]
    problems = []
    if images.shape[1:] != IMAGE_SHAPE or images.dtype != np.uint8:  # also any other number of axes
        problems.append(
            f"images is {images.dtype} {images.shape}, expected uint8 (N, {', '.join(map(str, IMAGE_SHAPE))})"
        )
    if labels.ndim != 2 or labels.shape[1] != len(shapes.FACTOR_NAMES) or labels.shape[0] != images.shape[0]:
        problems.append(f"labels is {labels.shape}, expected ({images.shape[0]}, {len(shapes.FACTOR_NAMES)})")
    if labels.dtype.kind not in "fiu":
        problems.append(f"labels are {labels.dtype}, expected numbers")
    problems += [_short_of_declared(name, data) for name, data in (("images", images), ("labels", labels))]
    problems = [problem for problem in problems if problem]
    if problems:
        handle.close()
        raise Shapes3DFileError(f"{path}: {'; '.join(problems)}")
    return handle


def _short_of_declared(name: str, data) -> str | None:
    """A dataset declaring more rows than the file stores (checked where storage is plain,
    before any read allocates the declared size)."""
    if data.compression is not None or data.chunks is not None:
        return None  # compressed or chunked: the stored size says nothing about the declared one
    declared = int(np.prod(data.shape, dtype=np.int64)) * data.dtype.itemsize
    stored = data.id.get_storage_size()
    return (
        None
        if stored >= declared
        else f"{name} declares {data.shape[0]} rows ({declared} bytes) but stores {stored} bytes"
    )


def label_indices(labels: np.ndarray, path: Path) -> np.ndarray:
    """Each label's index into Shapes3D's value list for its factor (N, 6); an unknown
    value is an error naming the factor."""
    indices = np.empty(labels.shape, dtype=np.int64)
    if not np.isfinite(labels).all():
        row, column = np.argwhere(~np.isfinite(labels))[0]
        raise Shapes3DFileError(
            f"{path}: a label {shapes.FACTOR_NAMES[column]} is {labels[row, column]}, not a Shapes3D value"
        )
    for k, name in enumerate(shapes.FACTOR_NAMES):
        grid = np.asarray(shapes.FACTOR_VALUES[name])
        nearest = np.abs(labels[:, k, None] - grid[None, :]).argmin(axis=1)
        off = np.abs(grid[nearest] - labels[:, k]) > 1e-3
        if off.any():
            raise Shapes3DFileError(f"{path}: label {name} = {labels[off, k][0]:g} is not a Shapes3D value")
        indices[:, k] = nearest
    return indices


def import_file(
    path: Path | str, folder: Path | str, subset: dict[str, list[int]] | None, split: dict, provenance: dict
) -> int:
    """Copy the rows whose factor indices are in ``subset`` into ``folder`` in the common
    on-disk form (uint8 images, channels first) with the ``split`` column; returns the
    number of images. Everything is checked before the first image is written."""
    path = Path(path)
    wanted = shapes.all_indices(subset)  # validates the subset's names and indices
    with _open(path) as handle:
        labels = handle["labels"]  # read in chunks: the declared size is checked, the content not yet
        indices = np.concatenate(
            [label_indices(labels[start : start + CHUNK], path) for start in range(0, len(labels), CHUNK)]
        )
        keep = np.flatnonzero(_rows_in(indices, wanted))
        if len(keep) == 0:
            raise Shapes3DFileError(f"{path}: no image matches the requested subset")
        factor_table, factors = _factor_frame(indices[keep])
        factors["split"] = splits.split_column(factors, factor_table, split)
        height, width, channels = IMAGE_SHAPE
        with base.images_writer(folder, (len(keep), channels, height, width), np.uint8) as out:
            for start in range(0, len(keep), CHUNK):
                rows = keep[start : start + CHUNK]
                out[start : start + len(rows)] = np.moveaxis(handle["images"][rows], -1, 1)
            dataset = base.Dataset(images=out, factors=factors, factor_table=factor_table)
            meta = base.stored_meta(dataset, {**provenance, "source": str(path)})
    base.write_factors(factors, factor_table, folder, meta)
    return len(keep)


def _rows_in(indices: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Whether each row of ``indices`` is one of the ``wanted`` combinations."""
    radix = np.asarray([len(shapes.FACTOR_VALUES[n]) for n in shapes.FACTOR_NAMES])
    weights = np.concatenate([np.cumprod(radix[::-1])[::-1][1:], [1]])
    return np.isin(indices @ weights, wanted @ weights)


def _factor_frame(indices: np.ndarray) -> tuple[list[base.Factor], pd.DataFrame]:
    """The factor table lists the values present; ``<name>_bin`` indexes that list."""
    table, columns = [], {}
    for k, name in enumerate(shapes.FACTOR_NAMES):
        values = np.asarray(shapes.FACTOR_VALUES[name])
        present, position = np.unique(indices[:, k], return_inverse=True)
        table.append(base.Factor(name, "categorical", tuple(float(v) for v in values[present])))
        columns[name] = values[indices[:, k]]
        columns[f"{name}_bin"] = position
    return table, pd.DataFrame(columns)


# --- the data set kind (registry.py) ----------------------------------------------------------

SCHEMA = yaml.safe_load("""
description: The real Shapes3D file (3dshapes.h5), imported by streaming.
type: object
additionalProperties: false
required: [kind, path, split]
properties:
  kind: {const: shapes3d_file, description: "A local 3dshapes.h5.", default: shapes3d_file}
  path: {type: string, minLength: 1, description: "Path of 3dshapes.h5 (images uint8 N x 64 x 64 x 3, labels float N x 6).", default: 3dshapes.h5}
  subset: {$ref: "#/$defs/factor_subset", default: {}}
  spacing: {$ref: "#/$defs/subset_spacing", default: any}
  split: {$ref: "#/$defs/split"}
""")  # noqa: E501


def _import(spec: dict, folder: Path, provenance: dict) -> None:
    import_file(spec["path"], folder, shapes.subset_indices(spec), spec["split"], provenance)


KIND = DatasetKind(
    name="shapes3d_file",
    schema=SCHEMA,
    factor_names=lambda spec: shapes.FACTOR_NAMES,
    image_size=lambda spec: IMAGE_SHAPE[:2],
    images=lambda spec: (0, 0),  # only the file can say
    cardinalities=shapes.subset_cardinalities,  # at most: the file may lack values
    make=_import,
    studies=lambda spec: frozenset({EXACT_ORDER}),
    problem=shapes.native_spacing_problem,
    external_file="path",
)
