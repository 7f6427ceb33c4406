"""Gaussian bumps (Liang, Liu & Fiete, arXiv 2402.03305): one 2D Gaussian bump per
image, centred at (x, y) on a lattice over an H x W canvas.

Coordinates are in pixels: x is the column, y the row, (0, 0) the top-left
pixel's centre.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Dataset, Factor, bin_index


def lattice(extent: int, spacing: float, margin: float) -> np.ndarray:
    """Centres from ``margin`` to ``extent - 1 - margin`` in steps of ``spacing``."""
    last = extent - 1 - margin
    count = int(np.floor((last - margin) / spacing + 1e-9)) + 1
    return margin + spacing * np.arange(count)


def render(xs: np.ndarray, ys: np.ndarray, height: int, width: int, sigma: float) -> np.ndarray:
    """Images (N, 1, H, W) in [-1, 1] with one bump of width ``sigma`` at each (x, y)."""
    rows = np.arange(height, dtype=np.float64)[None, :, None]
    cols = np.arange(width, dtype=np.float64)[None, None, :]
    xs = np.asarray(xs, dtype=np.float64)[:, None, None]
    ys = np.asarray(ys, dtype=np.float64)[:, None, None]
    bumps = np.exp(-((cols - xs) ** 2 + (rows - ys) ** 2) / (2.0 * sigma**2))
    return (2.0 * bumps - 1.0).astype(np.float32)[:, None]


def make(height: int, width: int, sigma: float, spacing_x: float, spacing_y: float, margin: float) -> Dataset:
    """Every lattice position once."""
    x_values = lattice(width, spacing_x, margin)
    y_values = lattice(height, spacing_y, margin)
    grid_x, grid_y = np.meshgrid(x_values, y_values, indexing="xy")
    xs, ys = grid_x.ravel(), grid_y.ravel()
    factor_table = [
        Factor("x", "continuous", tuple(float(v) for v in x_values)),
        Factor("y", "continuous", tuple(float(v) for v in y_values)),
    ]
    factors = pd.DataFrame({"x": xs, "y": ys})
    for factor in factor_table:
        factors[f"{factor.name}_bin"] = bin_index(factors[factor.name].to_numpy(), factor)
    return Dataset(images=render(xs, ys, height, width, sigma), factors=factors, factor_table=factor_table)
