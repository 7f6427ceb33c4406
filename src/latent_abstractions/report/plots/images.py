"""An image drawn from its stored form (the figures that show images read it)."""

from __future__ import annotations

import numpy as np

from ...core.pixels import model_range


def show_image(ax, image: np.ndarray) -> None:
    """Draw a stored (C, H, W) image (float32 in [-1, 1] or uint8), grey or RGB."""
    image = model_range(image)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=-1, vmax=1)
    else:
        ax.imshow(np.clip((np.moveaxis(image, 0, -1) + 1) / 2, 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])
