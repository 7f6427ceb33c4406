"""Gaussian bumps (Liang, Liu & Fiete, arXiv 2402.03305): one 2D Gaussian bump per
image, centred at (x, y) on a lattice over an H x W canvas, or at random centres.

Coordinates are in pixels: x is the column, y the row, (0, 0) the top-left pixel's
centre. Imbalanced variants space the x and y lattices differently. The ``stripe``
profile is the 1D variant: a vertical stripe at x, constant along y, whose only
factor is x.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from ..factors import Factor, factor_names
from .base import Dataset, bin_index


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
    names = list(factor_names({"kind": "bumps", "profile": profile}))
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
