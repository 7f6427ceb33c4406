"""What a generated bumps image shows: how many bumps, and where the bump is.

Images are (N, 1, H, W) in [-1, 1] with a background of -1 and a bump peaking at +1,
as the bumps data set draws them. A *bump* is a local maximum (over its 3 x 3
neighbourhood) whose height above the background, ``(value + 1) / 2``, exceeds
``threshold`` (default 0.5: half a true bump's peak). The position of an image's
tallest bump is the intensity-weighted centroid of the heights within ``radius``
pixels of it (a bump of width sigma is fitted without bias by a window of about
2-3 sigma). A sample is *accurate* when it has exactly one bump and both of its
coordinates lie within ``tolerance`` pixels of the requested ones.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError

DEFAULT_THRESHOLD = 0.5
DEFAULT_RADIUS = 2
DEFAULT_TOLERANCE = 1.0  # pixels; the default lattice spacing


def heights(images: np.ndarray) -> np.ndarray:
    """Height above the background in [0, 1], (N, H, W)."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[1] != 1:
        raise InputError(f"expected bumps images (N, 1, H, W), got shape {images.shape}")
    return np.clip((images[:, 0] + 1.0) / 2.0, 0.0, None)


def count_bumps(images: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Number of local maxima above ``threshold`` per image (a plateau counts once)."""
    h = heights(images)
    padded = np.pad(h, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    rows, cols = h.shape[1:]
    is_peak = h > threshold
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            neighbour = padded[:, 1 + dy : 1 + dy + rows, 1 + dx : 1 + dx + cols]
            # Strictly above earlier neighbours, at least as high as later ones: one pixel per plateau.
            is_peak &= (h > neighbour) if (dy, dx) < (0, 0) else (h >= neighbour)
    return is_peak.reshape(len(h), -1).sum(axis=1)


def bump_centres(images: np.ndarray, radius: int = DEFAULT_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) in pixels (x the column) of each image's tallest bump, by a windowed centroid."""
    h = heights(images)
    n, rows, cols = h.shape
    peak = h.reshape(n, -1).argmax(axis=1)
    peak_y, peak_x = np.divmod(peak, cols)
    grid_y, grid_x = np.mgrid[0:rows, 0:cols]
    window = (np.abs(grid_y[None] - peak_y[:, None, None]) <= radius) & (
        np.abs(grid_x[None] - peak_x[:, None, None]) <= radius
    )
    weight = h * window
    total = weight.sum(axis=(1, 2))
    total = np.where(total > 0, total, 1.0)
    return (weight * grid_x[None]).sum(axis=(1, 2)) / total, (weight * grid_y[None]).sum(axis=(1, 2)) / total


def assess(
    images: np.ndarray,
    requested_x: np.ndarray,
    requested_y: np.ndarray | None,
    tolerance: float = DEFAULT_TOLERANCE,
    threshold: float = DEFAULT_THRESHOLD,
    radius: int = DEFAULT_RADIUS,
    spacing: tuple[float, float] = (np.inf, np.inf),
) -> dict[str, np.ndarray]:
    """Per image: bump count, fitted centre, errors and accuracy (overall and per axis),
    within ``tolerance`` pixels and (``*_half_spacing``) within half of each axis's lattice
    ``spacing``: a tolerance comparable across axes whose lattices differ.
    ``requested_y`` None: stripe images, judged on x alone."""
    count = count_bumps(images, threshold)
    x, y = bump_centres(images, radius)
    error_x = np.abs(x - np.asarray(requested_x, dtype=np.float64))
    error_y = np.zeros_like(error_x) if requested_y is None else np.abs(y - np.asarray(requested_y, dtype=np.float64))
    single = count == 1
    return {
        "count": count,
        "x": x,
        "y": y,
        "error_x": error_x,
        "error_y": error_y,
        "accurate_x": single & (error_x <= tolerance),
        "accurate_y": single & (error_y <= tolerance),
        "accurate": single & (error_x <= tolerance) & (error_y <= tolerance),
        "accurate_x_half_spacing": single & (error_x <= spacing[0] / 2),
        "accurate_y_half_spacing": single & (error_y <= spacing[1] / 2),
        "accurate_half_spacing": single & (error_x <= spacing[0] / 2) & (error_y <= spacing[1] / 2),
    }
