"""The two stored forms of images and the one range models see."""

from __future__ import annotations

import numpy as np


def model_range(images: np.ndarray) -> np.ndarray:
    """Images as float32 in [-1, 1], whichever of the two stored forms they are in."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    return np.asarray(images, dtype=np.float32)
