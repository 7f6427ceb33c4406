"""The grammar of feature taps, written once: params checks, the schema's pattern and the
networks' tap names all come from here.

The project's U-Net has the blocks ``down.<level>``, ``mid`` and ``up.<level>``; a diffusers
UNet2DModel is tapped at module paths (``down_blocks.1``, ``mid_block``).
"""

from __future__ import annotations

import re

SCORE_UNET = re.compile(r"^(down\.[0-9]+|mid|up\.[0-9]+)$")
MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


def score_unet_names(levels: int) -> list[str]:
    """Every tap of a project U-Net with ``levels`` levels, encoder first."""
    return [f"down.{i}" for i in range(levels)] + ["mid"] + [f"up.{i}" for i in range(levels)]


def score_unet_problem(tap: str, levels: int) -> str | None:
    """Why ``tap`` is not a block of a project U-Net with ``levels`` levels (naming the taps
    it has), or None."""
    if tap in score_unet_names(levels):
        return None
    return f"the project's U-Net with {levels} levels has the taps {', '.join(score_unet_names(levels))}"
