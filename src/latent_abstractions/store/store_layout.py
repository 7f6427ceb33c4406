"""The trajectory stores' layout: what their layout metadata says, their column names
and their Arrow schema; what the writer (store.py) and the reader (trajectories.py) share.

The method in full: docs/data.md, "The trajectory store".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from ..core.factors import Factor

SCHEMA_VERSION = 2
LAYOUT_KEY = b"latent_abstractions.trajectory_layout"
PART_KEY = b"latent_abstractions.store_part"
PASSES = ("cond", "uncond", "random")
NETWORK_PASSES = ("cond", "uncond")
MAP_SIZE = 4
ROW_GROUP_BYTES = 32 << 20
KEYS = {"trajectories": ("trajectory",), "forks": ("trajectory", "branch"), "forward_backward": ("source", "repeat")}
FACTOR_PREFIX = {"trajectories": "requested_", "forks": "requested_", "forward_backward": "source_"}
PARENT_BRANCH = -1


# --- the layout -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StoreLayout:
    """What every store's layout says and its reader needs; ``extra`` holds the rest
    under its JSON keys: the sampling settings and the kind's own fields (``taps``,
    ``branches``, ``repeats``, ...; the writer adds ``schema_version``). Its JSON form
    (:meth:`to_json`, :meth:`from_json`) is the files' layout metadata."""

    kind: str
    image_shape: tuple[int, ...]
    factors: tuple[Factor, ...]  # every factor of the network
    factor_names: tuple[str, ...]  # those with a column
    recorded_steps: tuple[int, ...]
    recorded_t: tuple[float, ...]  # per recorded step
    recorded_log_snr: tuple[float, ...]
    rows: Mapping[int, int]  # recorded step -> its rows
    parts: Mapping[int, int]  # recorded step -> its files
    checkpoint_sha256: str
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        shadowed = set(self.extra) & {f.name for f in dataclasses.fields(self)}
        if shadowed:
            raise ValueError(f"layout extra repeats the field {', '.join(sorted(shadowed))}")

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "image_shape": list(self.image_shape),
            "factors": [factor.to_dict() for factor in self.factors],
            "factor_names": list(self.factor_names),
            "recorded_steps": list(self.recorded_steps),
            "recorded_t": list(self.recorded_t),
            "recorded_log_snr": list(self.recorded_log_snr),
            "rows": {str(step): count for step, count in self.rows.items()},  # JSON keys are strings
            "parts": {str(step): count for step, count in self.parts.items()},
            "checkpoint_sha256": self.checkpoint_sha256,
            **self.extra,
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> StoreLayout:
        typed = {f.name for f in dataclasses.fields(cls)}
        return cls(
            kind=entry["kind"],
            image_shape=tuple(entry["image_shape"]),
            factors=tuple(Factor.from_dict(factor) for factor in entry["factors"]),
            factor_names=tuple(entry["factor_names"]),
            recorded_steps=tuple(int(step) for step in entry["recorded_steps"]),
            recorded_t=tuple(entry["recorded_t"]),
            recorded_log_snr=tuple(entry["recorded_log_snr"]),
            rows={int(step): count for step, count in entry["rows"].items()},
            parts={int(step): count for step, count in entry["parts"].items()},
            checkpoint_sha256=entry["checkpoint_sha256"],
            extra={key: value for key, value in entry.items() if key not in typed},
        )

    def time_of(self, step: int) -> tuple[float, float]:
        """(t, log-SNR) of a recorded step."""
        index = self.recorded_steps.index(step)
        return self.recorded_t[index], self.recorded_log_snr[index]


# --- column names -----------------------------------------------------------------------------


def activation_column(pass_name: str, tap: str) -> str:
    return f"act.{pass_name}.{tap}"


def map_column(pass_name: str, tap: str) -> str:
    return f"map.{pass_name}.{tap}"


def full_map_column(pass_name: str, tap: str) -> str:
    return f"full.{pass_name}.{tap}"


def denoised_column(pass_name: str) -> str:
    return f"denoised.{pass_name}"


def eps_column(pass_name: str) -> str:
    return f"eps.{pass_name}"


def factor_column(kind: str, factor: str) -> str:
    return FACTOR_PREFIX[kind] + factor


def sees_condition(feature: str) -> bool:
    """Whether a feature was computed with the requested factors fed in."""
    return feature.split(".")[1:2] == ["cond"]


def step_directory(step: int) -> str:
    return f"step_{step:04d}"


def part_file(part: int) -> str:
    return f"part_{part:05d}.parquet"


def map_cells(height: int, width: int) -> tuple[int, int]:
    return min(MAP_SIZE, height), min(MAP_SIZE, width)


# --- the schema -------------------------------------------------------------------------------


def _vector(width: int, value: pa.DataType | None = None) -> pa.DataType:
    """A fixed-width list of ``value`` (default float32)."""
    return pa.list_(value or pa.float32(), width)


def vector_columns(layout: dict) -> list[tuple[str, pa.DataType]]:
    """The list-valued columns of a store described by ``layout``, in file order."""
    pixels = int(np.prod(layout["image_shape"]))
    if layout["kind"] != "trajectories":
        return [("image", _vector(pixels))]
    columns = [("state", _vector(pixels))]
    for pass_name in layout["passes"]:
        if pass_name in NETWORK_PASSES:
            columns += [(eps_column(pass_name), _vector(pixels)), (denoised_column(pass_name), _vector(pixels))]
    for pass_name in layout["passes"]:
        for tap in layout["taps"]:
            channels, height, width = layout["tap_shapes"][tap]
            cells = map_cells(height, width)
            columns += [
                (activation_column(pass_name, tap), _vector(channels)),
                (map_column(pass_name, tap), _vector(channels * cells[0] * cells[1])),
            ]
        for tap in layout["full_maps"]:
            channels, height, width = layout["tap_shapes"][tap]
            columns.append((full_map_column(pass_name, tap), _vector(channels * height * width, pa.float16())))
    return columns


def scalar_columns(layout: dict) -> list[tuple[str, pa.DataType]]:
    kind = layout["kind"]
    first = [(KEYS[kind][0], pa.int32()), ("step", pa.int32()), ("t", pa.float32()), ("log_snr", pa.float32())]
    extra = {
        "trajectories": [],
        "forks": [("branch", pa.int32())],
        "forward_backward": [("repeat", pa.int32()), ("split", pa.string())],
    }[kind]
    factors = [(factor_column(kind, name), pa.float64()) for name in layout["factor_names"]]
    return first + extra + factors


def schema_for(layout: dict) -> pa.Schema:
    """The Arrow schema (without metadata) of every file of the store ``layout`` describes."""
    return pa.schema(
        [pa.field(name, kind, nullable=False) for name, kind in scalar_columns(layout) + vector_columns(layout)]
    )


def feature_columns_of(layout: dict) -> list[str]:
    """Columns a probe can read: state, eps, denoised estimates, activations, maps (or ``image``)."""
    return [name for name, _ in vector_columns(layout)]
