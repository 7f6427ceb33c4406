"""The data set sheets: a contact sheet and factor traversals."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..figure_style import captioned  # also sets the backend and the style
from .images import show_image


@captioned(
    "A sample of the data set's images. Every image is a deterministic function of its factors, so "
    "the noised data distribution, hence every exact curve, is known."
)
def contact_sheet(images: np.ndarray, title: str, columns: int = 16, limit: int = 128) -> plt.Figure:
    """Up to ``limit`` images, evenly spaced through the data set."""
    chosen = np.unique(np.linspace(0, len(images) - 1, min(limit, len(images))).round().astype(int))
    rows = int(np.ceil(len(chosen) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(0.8 * columns, 0.8 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, index in zip(axes.ravel(), chosen):
        show_image(ax, images[index])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


@captioned(
    "One row per factor: that factor runs through its values while the others stay as close as the "
    "data set allows to the first image. It shows what each factor changes."
)
def traversals(images: np.ndarray, rows_per_factor: dict[str, list[tuple[float, int]]]) -> plt.Figure:
    """One row per factor: the images along that factor's values, the others held fixed."""
    width = max(len(row) for row in rows_per_factor.values())
    fig, axes = plt.subplots(
        len(rows_per_factor), width, figsize=(0.9 * width + 1.2, 1.0 * len(rows_per_factor)), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for axes_row, (name, row) in zip(axes, rows_per_factor.items()):
        for ax, (value, index) in zip(axes_row, row):
            show_image(ax, images[index])
            ax.set_title(f"{value:g}", fontsize=6)
        axes_row[0].text(-0.15, 0.5, name, transform=axes_row[0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle("factor traversals (one factor varies per row)", fontsize=9)
    fig.tight_layout()
    return fig
