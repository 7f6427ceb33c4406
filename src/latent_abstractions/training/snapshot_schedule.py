"""When training keeps its EMA snapshots: log-spaced steps from the end of the warm-up.

Torch-free, so that params validation can check a phase study's schedule cheaply.
"""

from __future__ import annotations

import numpy as np


def checkpoint_steps(steps: int, count: int, start: int = 1) -> list[int]:
    """``count`` (or fewer, once rounded) log-spaced steps in start..steps, the last always
    included. Training passes the end of its warm-up as ``start``: snapshots inside the
    warm-up show a network that has barely moved, and a phase transition is located only
    to the ratio between consecutive snapshots (docs/science.md)."""
    if count <= 0:
        return [steps]
    first = min(max(start, 1), steps)
    return sorted(set(np.geomspace(first, steps, count).round().astype(int).tolist()) | {steps})


def snapshot_ratio(snapshot_steps: list[int]) -> float:
    """The largest ratio between consecutive snapshot steps (1 for fewer than two)."""
    return max((b / a for a, b in zip(snapshot_steps, snapshot_steps[1:])), default=1.0)
