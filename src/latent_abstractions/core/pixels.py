"""The two stored forms of images and the one range models see.

Images are stored as uint8 (v maps to v / 127.5 - 1) or as floats already in [-1, 1];
models see floats in [-1, 1]. ``model_range`` maps NumPy arrays, ``tensor_model_range``
tensors (on their own device, in a float dtype of the caller's choice).
"""

from __future__ import annotations

import numpy as np
import torch


def model_range(images: np.ndarray) -> np.ndarray:
    """Images as float32 in [-1, 1], whichever of the two stored forms they are in."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    return np.asarray(images, dtype=np.float32)


def tensor_model_range(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Images as ``dtype`` in [-1, 1], whichever of the two stored forms they are in."""
    if images.dtype == torch.uint8:
        return images.to(dtype) / 127.5 - 1.0
    return images.to(dtype)


def stored_step(images: np.ndarray | torch.Tensor) -> float:
    """The model-range length of one stored unit: x = step * stored + offset."""
    return 1.0 / 127.5 if stored_as_uint8(images) else 1.0


def stored_as_uint8(images: np.ndarray | torch.Tensor) -> bool:
    return images.dtype == (torch.uint8 if isinstance(images, torch.Tensor) else np.uint8)
