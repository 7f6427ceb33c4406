"""When training keeps its EMA snapshots: log-spaced steps from the end of the warm-up.

Torch-free, so that params validation can check a phase study's schedule cheaply.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..core.errors import InputError

SNAPSHOT_NAME = re.compile(r"step_(\d+)\.safetensors")


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


def snapshot_name(step: int) -> str:
    return f"step_{step:08d}.safetensors"


def snapshot_step(path: Path) -> int:
    """The training step a snapshot was taken at, from its name."""
    matched = SNAPSHOT_NAME.fullmatch(path.name)
    if matched is None:
        raise ValueError(f"{path.name} is not a snapshot's name (step_<step>.safetensors)")
    return int(matched.group(1))


def snapshots_in(folder: Path) -> list[Path]:
    """The snapshots training wrote to ``folder``, in training order. Hidden files are the
    engines' and the writers' own (Snakemake's .snakemake_timestamp, an interrupted write's
    temporary); any other file (a copy, a download) is refused by name, not skipped."""
    if not folder.is_dir():
        raise InputError(f"no checkpoints in {folder}")
    files = sorted(path for path in folder.iterdir() if not path.name.startswith("."))
    strays = [path.name for path in files if not SNAPSHOT_NAME.fullmatch(path.name)]
    if strays:
        raise InputError(
            f"{folder} holds {strays[0]!r}, which is not a training snapshot (step_<step>.safetensors): "
            "remove it, or train again"
        )
    if not files:
        raise InputError(f"no checkpoints in {folder}")
    by_step = sorted((snapshot_step(path), path) for path in files)
    twice = [step for (step, _), (following, _) in zip(by_step, by_step[1:]) if step == following]
    if twice:
        raise InputError(f"{folder} holds two snapshots of step {twice[0]}: remove one, or train again")
    return [path for _, path in by_step]
