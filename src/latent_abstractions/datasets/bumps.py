"""Gaussian bumps (Liang, Liu & Fiete, arXiv 2402.03305): one 2D Gaussian bump per
image, centred at (x, y) on a lattice over an H x W canvas, or at random centres.

Coordinates are in pixels: x is the column, y the row, (0, 0) the top-left pixel's
centre. Imbalanced variants space the x and y lattices differently. The ``stripe``
profile is the 1D variant: a vertical stripe at x, constant along y, whose only
factor is x.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..core.errors import InputError
from ..core.factors import Factor
from .base import Dataset, bin_index, save_with_split
from .registry import PHASES, DatasetKind


def lattice(extent: int, spacing: float, margin: float) -> np.ndarray:
    """Centres from ``margin`` to ``extent - 1 - margin`` in steps of ``spacing``."""
    last = extent - 1 - margin
    count = int(np.floor((last - margin) / spacing + 1e-9)) + 1
    return margin + spacing * np.arange(count)


def render(xs: np.ndarray, ys: np.ndarray | None, height: int, width: int, sigma: float) -> np.ndarray:
    """Images (N, 1, H, W) in [-1, 1]: a bump of width ``sigma`` at each (x, y), or a
    vertical stripe at each x when ``ys`` is None."""
    rows = np.arange(height, dtype=np.float64)[None, :, None]
    cols = np.arange(width, dtype=np.float64)[None, None, :]
    xs = np.asarray(xs, dtype=np.float64)[:, None, None]
    squared = (cols - xs) ** 2
    if ys is not None:
        squared = squared + (rows - np.asarray(ys, dtype=np.float64)[:, None, None]) ** 2
    profile = np.exp(-squared / (2.0 * sigma**2))
    profile = np.broadcast_to(profile, (len(xs), height, width))
    return (2.0 * profile - 1.0).astype(np.float32)[:, None]


def make(
    height: int,
    width: int,
    sigma: float,
    spacing_x: float,
    spacing_y: float,
    margin: float,
    profile: str = "bump",
    centres: str = "lattice",
    count: int = 256,
    seed: int = 0,
) -> Dataset:
    """Every lattice position once (``centres="lattice"``), or ``count`` centres drawn
    uniformly over the same box (``centres="continuous"``); factor values are then the
    draws, and ``<name>_bin`` is the nearest lattice value, for classification."""
    names = list(_names(profile))
    grids = {"x": lattice(width, spacing_x, margin), "y": lattice(height, spacing_y, margin)}
    if centres == "lattice":
        mesh = np.meshgrid(*[grids[n] for n in reversed(names)], indexing="ij")
        columns = {name: grid.ravel() for name, grid in zip(reversed(names), mesh)}
    elif centres == "continuous":
        rng = np.random.default_rng(seed)
        columns = {name: rng.uniform(grids[name][0], grids[name][-1], count) for name in names}
    else:
        raise InputError(f"unknown centres {centres!r}; allowed: lattice, continuous")
    kind = "continuous"
    factor_table = [Factor(name, kind, tuple(float(v) for v in grids[name])) for name in names]
    factors = pd.DataFrame({name: columns[name] for name in names})
    for factor in factor_table:
        factors[f"{factor.name}_bin"] = bin_index(factors[factor.name].to_numpy(), factor)
    images = render(
        factors["x"].to_numpy(), None if profile == "stripe" else factors["y"].to_numpy(), height, width, sigma
    )
    return Dataset(images=images, factors=factors, factor_table=factor_table)


# --- the data set kind (registry.py) ----------------------------------------------------------

SCHEMA = yaml.safe_load("""
description: One 2D Gaussian bump per image (or a 1D vertical stripe), centred on a lattice or at random.
type: object
additionalProperties: false
required: [kind, height, width, sigma, spacing_x, spacing_y, margin, split]
properties:
  kind: {const: bumps, description: "Gaussian bumps.", default: bumps}
  height: {type: integer, minimum: 4, maximum: 256, description: "Canvas rows, pixels.", default: 16}
  width: {type: integer, minimum: 4, maximum: 256, description: "Canvas columns, pixels.", default: 16}
  sigma: {type: number, exclusiveMinimum: 0, description: "Bump width (standard deviation), pixels.", default: 1.0}
  spacing_x: {type: number, exclusiveMinimum: 0, description: "Lattice spacing of centres along x, pixels (imbalanced data: unlike spacing_y).", default: 1.0}
  spacing_y: {type: number, exclusiveMinimum: 0, description: "Lattice spacing of centres along y, pixels.", default: 1.0}
  margin: {type: number, minimum: 0, description: "Centres stay at least this far from the border, pixels.", default: 2.0}
  profile: {enum: [bump, stripe], description: "bump: factors x and y; stripe: a vertical stripe at x, factor x only.", default: bump}
  centres: {enum: [lattice, continuous], description: "lattice: every lattice point once; continuous: `count` uniform draws over the lattice's box.", default: lattice}
  count: {type: integer, minimum: 1, description: "Images when centres are continuous.", default: 256}
  seed: {type: integer, minimum: 0, maximum: 4294967295, description: "Seed of continuous centres.", default: 0}
  split: {$ref: "#/$defs/split"}
""")  # noqa: E501
MAKE_KEYS = ("height", "width", "sigma", "spacing_x", "spacing_y", "margin", "profile", "centres", "count", "seed")


def _names(profile: str) -> tuple[str, ...]:
    return ("x",) if profile == "stripe" else ("x", "y")


def _lattice_sizes(spec: dict) -> dict[str, int]:
    """Lattice values per factor of a params ``dataset`` section."""
    sizes = {
        "x": len(lattice(spec["width"], spec["spacing_x"], spec["margin"])),
        "y": len(lattice(spec["height"], spec["spacing_y"], spec["margin"])),
    }
    return {name: sizes[name] for name in _names(spec.get("profile", "bump"))}


def _images(spec: dict) -> tuple[int, int]:
    count = spec["count"] if spec.get("centres") == "continuous" else math.prod(_lattice_sizes(spec).values())
    return count, spec["height"] * spec["width"]


def _make(spec: dict, folder: Path, provenance: dict) -> None:
    save_with_split(make(**{key: spec[key] for key in MAKE_KEYS}), spec["split"], folder, provenance)


def _margin_problem(spec: dict) -> str | None:
    if 2 * spec["margin"] >= min(spec["height"], spec["width"]) - 1:
        return f"dataset.margin = {spec['margin']}: leaves no room for centres"
    return None


KIND = DatasetKind(
    name="bumps",
    schema=SCHEMA,
    factor_names=lambda spec: _names(spec.get("profile", "bump")),
    image_size=lambda spec: (spec["height"], spec["width"]),
    images=_images,
    cardinalities=_lattice_sizes,
    make=_make,
    itemsize=4,  # float32
    studies=lambda spec: frozenset({PHASES}) if spec.get("profile", "bump") == "bump" else frozenset(),
    problem=_margin_problem,
)
