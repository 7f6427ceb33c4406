"""The one shape rule of the U-Nets' levels: each level but the last halves the image, and
the decoder joins its skips at the encoder's sizes, so each side must halve evenly. Read by
the params check (the sizes params give) and by the network's architecture (the size of the
data on disk, a backstop for data whose size no params key states)."""

from __future__ import annotations


def halving_problem(height: int, width: int, levels: int) -> str | None:
    """What is wrong with an image of ``height`` x ``width`` for ``levels`` levels, or None."""
    factor = 2 ** (levels - 1)
    if height % factor or width % factor:
        return f"must be divisible by {factor} for {levels} model levels"
    return None
