"""The samples figure: generated images with their requested conditions."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..figure_style import captioned  # also sets the backend and the style
from .images import show_image


@captioned(
    "The final image of one trajectory per requested condition (title: the request). Compare each "
    "image with its request: wrong or several objects show a model that has not learned the "
    "condition."
)
def sample_grid(images: np.ndarray, requested: pd.DataFrame, columns: int = 8, limit: int = 48) -> plt.Figure:
    """Generated images, titled with the condition each was asked for; for (x, y) data a
    red cross marks the requested position."""
    chosen = np.unique(np.linspace(0, len(images) - 1, min(limit, len(images))).round().astype(int))
    rows = int(np.ceil(len(chosen) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    positional = {"x", "y"} <= set(requested.columns)
    for ax, index in zip(axes.ravel(), chosen):
        show_image(ax, images[index])
        condition = requested.iloc[index]
        if positional:
            ax.plot(condition["x"], condition["y"], "r+", ms=8, mew=1.2)
        ax.set_title(",".join(f"{v:g}" for v in condition.to_numpy()), fontsize=6)
    legend = "red + = requested (x, y)" if positional else f"title = requested {', '.join(requested.columns)}"
    fig.suptitle(f"generated samples; {legend}", fontsize=9)
    fig.tight_layout()
    return fig
