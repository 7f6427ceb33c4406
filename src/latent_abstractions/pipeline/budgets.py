"""Sizes before compute: each step's largest arrays, estimated from its params alone, against
the memory and disk the step may use. The schema bounds each key; their products can still
ask for terabytes. Each estimate is a floor (the arrays named, nothing else), so a refusal
is never a false alarm; one that passes can still need more.

The memory budget is the machine's available memory, or ``$LATENT_ABSTRACTIONS_MEMORY_GB``
where set (a cluster job's allocation, say); the disk budget the free space under data/.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from ..core.errors import InputError
from ..datasets.registry import kind_of

GIB = 1 << 30
MEMORY_VARIABLE = "LATENT_ABSTRACTIONS_MEMORY_GB"
BYTES_PER_PARAMETER = 20  # weights, gradient, EMA and Adam's two moments, float32


@dataclasses.dataclass(frozen=True)
class Need:
    what: str
    keys: str  # the params that drive the size
    bytes: int
    medium: str  # "memory" or "disk"


def images_of(dataset: dict) -> tuple[int, int]:
    """(images, values per image) of a data set's params; (0, 0) where only its file can say."""
    return kind_of(dataset).images(dataset)


def _pixels(dataset: dict) -> int:
    return images_of(dataset)[1] or 3 * 64 * 64


def needs(step: str, params: dict) -> list[Need]:
    """The sizes ``step`` asks for under the experiment's ``params``."""
    found = []
    count, pixels = images_of(params["dataset"])
    if step == "prepare_data" and count:
        itemsize = kind_of(params["dataset"]).itemsize
        found.append(
            Need("the data set's images", "dataset (sizes, spacings, subset)", count * pixels * itemsize, "memory")
        )
        found.append(
            Need("the data set's images", "dataset (sizes, spacings, subset)", count * pixels * itemsize, "disk")
        )
    if step in ("train_score_model", "sample_trajectories", "estimate_information") and "model" in params:
        model = params["model"]
        # at least one 3x3 convolution pair per level, c -> c: 18 c^2 weights
        parameters = 18 * model["base_channels"] ** 2 * sum(m * m for m in model["channel_mults"])
        found.append(
            Need(
                "the network's parameters and optimiser state",
                "model.base_channels, model.channel_mults",
                parameters * BYTES_PER_PARAMETER,
                "memory",
            )
        )
    if step == "sample_trajectories" and "sample" in params:
        sample = params["sample"]
        trajectories = min(sample["max_conditions"], count or 1) * sample["per_position"]
        recorded = sample["record"].get("count") or len(
            sample["record"].get("steps") or sample["record"].get("times") or [1]
        )
        found.append(
            Need(
                "the trajectory store (states and denoised estimates)",
                "sample.max_conditions, sample.per_position, sample.record",
                trajectories * recorded * _pixels(params["dataset"]) * 4 * 2,
                "disk",
            )
        )
    if step == "exact_order" and "exact_order" in params:
        settings = params["exact_order"]
        pairs, points = settings["samples"], settings["points"]
        values = sum(kind_of(params["dataset"]).cardinalities(params["dataset"]).values())
        found.append(
            Need(
                "the draws and their posteriors",
                "exact_order.samples, exact_order.points",
                2 * pairs * _pixels(params["dataset"]) * 8 + 3 * points * pairs * values * 8,
                "memory",
            )
        )
    return found


def available(medium: str) -> int:
    if medium == "disk":
        folder = Path("data") if Path("data").is_dir() else Path(".")
        return shutil.disk_usage(folder).free
    if os.environ.get(MEMORY_VARIABLE):
        try:
            return int(float(os.environ[MEMORY_VARIABLE]) * GIB)
        except ValueError:
            raise InputError(f"{MEMORY_VARIABLE}={os.environ[MEMORY_VARIABLE]!r} is not a number of GiB") from None
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check(step: str, params: dict, experiment: str) -> None:
    """One line naming the keys and the size, before any compute, for a step that asks for more than there is."""
    for need in needs(step, params):
        have = available(need.medium)
        if need.bytes > have:
            hint = f" (or set {MEMORY_VARIABLE})" if need.medium == "memory" else ""
            raise InputError(
                f"{step} for experiment {experiment}: {need.what} need at least {size(need.bytes)} of "
                f"{need.medium}, {size(have)} is available; lower {need.keys}{hint}"
            )


def size(count: int) -> str:
    """Bytes in the largest unit that keeps the number at 1 or more."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count} bytes"
