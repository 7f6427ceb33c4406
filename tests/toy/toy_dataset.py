"""A toy data set, added through the registry alone: copied into the package's datasets/
folder as one new module, it is a data set kind of the pipeline (tests/test_toy_dataset.py).

A bright square on a dark canvas, at one of ``columns`` columns, at one of ``levels``
brightness levels: two categorical factors, a finite set of images, so it serves the
exact decision order too. The module to copy when adding a data set (docs/extending.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..core.factors import Factor
from .base import Dataset, save_with_split
from .registry import EXACT_ORDER, DatasetKind

SCHEMA = yaml.safe_load("""
description: A bright square at one of `columns` columns and `levels` brightness levels.
type: object
additionalProperties: false
required: [kind, size, split]
properties:
  kind: {const: toy, description: "Squares.", default: toy}
  size: {type: integer, minimum: 8, maximum: 64, description: "Image side, pixels.", default: 8}
  columns: {type: integer, minimum: 2, maximum: 8, description: "Column positions of the square.", default: 3}
  levels: {type: integer, minimum: 2, maximum: 8, description: "Brightness levels.", default: 2}
  split: {$ref: "#/$defs/split"}
""")
FACTOR_NAMES = ("column", "level")


def make(size: int, columns: int, levels: int) -> Dataset:
    """Every (column, level) once: float32 images (N, 1, size, size) in [-1, 1]."""
    column, level = (grid.ravel() for grid in np.meshgrid(np.arange(columns), np.arange(levels), indexing="ij"))
    side = size // (columns + 1)
    images = np.full((len(column), 1, size, size), -1.0, dtype=np.float32)
    for row, (c, v) in enumerate(zip(column, level)):
        left = c * size // columns
        images[row, 0, size // 2 - side // 2 : size // 2 + (side + 1) // 2, left : left + side] = (v + 1) / levels
    factor_table = [
        Factor("column", "categorical", tuple(float(c) for c in range(columns))),
        Factor("level", "categorical", tuple(float(v) for v in range(levels))),
    ]
    factors = pd.DataFrame(
        {"column": column.astype(float), "level": level.astype(float), "column_bin": column, "level_bin": level}
    )
    return Dataset(images=images, factors=factors, factor_table=factor_table)


def _room(spec: dict) -> str | None:
    """A rule the schema cannot express: the squares need at least a pixel each."""
    if spec["size"] < spec["columns"] + 1:
        return f"dataset.size = {spec['size']}: too small for {spec['columns']} columns of squares"
    return None


def _make(spec: dict, folder: Path, provenance: dict) -> None:
    save_with_split(make(spec["size"], spec["columns"], spec["levels"]), spec["split"], folder, provenance)


KIND = DatasetKind(
    name="toy",
    schema=SCHEMA,
    factor_names=lambda spec: FACTOR_NAMES,
    image_size=lambda spec: (spec["size"], spec["size"]),
    images=lambda spec: (spec["columns"] * spec["levels"], spec["size"] ** 2),
    cardinalities=lambda spec: {"column": spec["columns"], "level": spec["levels"]},
    make=_make,
    itemsize=4,
    studies=lambda spec: frozenset({EXACT_ORDER}),
    problem=_room,
)
