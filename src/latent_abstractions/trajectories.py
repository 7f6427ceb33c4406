"""The trajectory table: its Parquet form, written and read (recording.py fills it).

One row per (trajectory, recorded step). Columns:
- ``trajectory`` (int32), ``step`` (int32), ``t`` and ``log_snr`` (float32);
- ``requested_<factor>`` (float64): the condition the trajectory was sampled with
  (a continuous factor's value, a categorical factor's value index);
- ``state``: X_t flattened, fixed-size list of float32 (C*H*W);
- ``denoised.<pass>``: Tweedie's estimate of x_0 at that step from the pass's
  epsilon, same layout (``denoised.cond`` is what the sampler follows);
- ``act.<pass>.<tap>``: the tap's activations averaged over space, fixed-size list
  of float32 (channels);
- ``map.<pass>.<tap>``: the tap's activations averaged down to at most
  MAP_SIZE x MAP_SIZE, flattened (channels * cells): pooling over all of space
  throws position away, a low-resolution map keeps it;
where <pass> is ``cond`` (every factor given: the pass that drives sampling),
``uncond`` (every factor replaced by its null) or ``random`` (the unconditional
pass of a randomly initialised network of the same architecture, a control).

What a feature can see matters: a ``cond`` feature is computed with the requested
factors fed in, so it holds them even at pure noise and says nothing about what the
*trajectory* knows; :func:`sees_condition` marks such features, and analyses show
them only as "how the network represents its condition".
The image shape, taps and provenance are in the schema metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .artifacts import canonical_json, write_parquet

LAYOUT_KEY = b"latent_abstractions.trajectory_layout"
PASSES = ("cond", "uncond", "random")
MAP_SIZE = 4


def activation_column(pass_name: str, tap: str) -> str:
    return f"act.{pass_name}.{tap}"


def map_column(pass_name: str, tap: str) -> str:
    return f"map.{pass_name}.{tap}"


def denoised_column(pass_name: str) -> str:
    return f"denoised.{pass_name}"


def sees_condition(feature: str) -> bool:
    """Whether a feature was computed with the requested factors fed in."""
    return feature.split(".")[1:2] == ["cond"]


def write(table: pa.Table, path: Path | str, image_shape: tuple[int, ...], taps: list[str], factors: list[dict],
          meta: dict) -> None:
    """``factors``: name, kind and values of each factor (a categorical factor's
    ``requested_<name>`` holds the value's index)."""
    layout = {"image_shape": list(image_shape), "taps": list(taps), "passes": list(PASSES), "factors": factors}
    table = table.replace_schema_metadata({LAYOUT_KEY: canonical_json(layout).encode()})
    write_parquet(table, path, meta)


def read_layout(path: Path | str) -> dict:
    return read_layout_from_schema(pq.read_schema(path), str(path))


def read_layout_from_table(table: pa.Table) -> dict:
    return read_layout_from_schema(table.schema, "table")


def read_layout_from_schema(schema: pa.Schema, where: str) -> dict:
    metadata = schema.metadata or {}
    if LAYOUT_KEY not in metadata:
        raise ValueError(f"{where}: not a trajectory table (no layout in its metadata)")
    return json.loads(metadata[LAYOUT_KEY])


def vector_column(table: pa.Table, name: str) -> np.ndarray:
    """A fixed-size-list column as a (rows, width) float32 array, without copying per row."""
    column = table.column(name).combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)


def feature_columns(table: pa.Table) -> list[str]:
    """Columns a probe can read: raw state, denoised estimate and every activation."""
    return [name for name in table.column_names if name == "state" or name.split(".")[0] in ("denoised", "act", "map")]
