"""Layout the figures share: legend columns. (Images: images.py, so that the figures
without images do not carry the pixel conversion.)"""

from __future__ import annotations


def legend_columns(panels: int) -> int:
    """Columns of a figure legend below ``panels`` panels side by side."""
    return min(6, panels + 1)
