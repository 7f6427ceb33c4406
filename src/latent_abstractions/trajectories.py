"""Recording trajectories, and their Parquet form.

One row per (trajectory, recorded step). Columns:
- ``trajectory`` (int32), ``step`` (int32), ``t`` and ``log_snr`` (float32);
- ``requested_<factor>`` (float64): the condition the trajectory was sampled with
  (a continuous factor's value, a categorical factor's value index);
- ``state``: X_t flattened, fixed-size list of float32 (C*H*W);
- ``denoised``: Tweedie's estimate of x_0 at that step, same layout;
- ``act.<pass>.<tap>``: the tap's activations averaged over space, fixed-size
  list of float32 (channels), where <pass> is ``cond`` (all factors given, the
  pass that drives sampling) or ``uncond`` (every factor replaced by its null).
The image shape, taps and provenance are in the schema metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .artifacts import write_parquet
from .nets.unet import ScoreUNet
from .sde import SDE

LAYOUT_KEY = b"latent_abstractions.trajectory_layout"
PASSES = ("cond", "uncond")


def activation_column(pass_name: str, tap: str) -> str:
    return f"act.{pass_name}.{tap}"


class TrajectoryRecorder:
    """The sampler's ``eps_fn`` and ``callback`` in one: at recorded steps it runs the
    conditional and unconditional passes as one batch and keeps state, denoised
    estimate and pooled activations; elsewhere a single conditional pass."""

    def __init__(self, model: ScoreUNet, sde: SDE, factor_values: torch.Tensor,
                 record_steps: list[int], taps: list[str]):
        self.model, self.sde, self.taps = model, sde, list(taps)
        self.values = factor_values
        self.keep = torch.ones(factor_values.shape, dtype=torch.bool, device=factor_values.device)
        self.record_steps = set(record_steps)
        self.records: dict[int, dict[str, np.ndarray]] = {}

    def __call__(self, x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        if step not in self.record_steps:
            return self.model(x, t, self.values, self.keep)[0]
        batch = x.shape[0]
        both_keep = torch.cat([self.keep, torch.zeros_like(self.keep)])
        eps_both, activations = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([self.values, self.values]),
                                           both_keep, taps=self.taps)
        eps = eps_both[:batch]
        record = {
            "t": float(t[0]),
            "state": x.flatten(1).float().cpu().numpy(),
            "denoised": self.sde.denoise(x, eps, t).flatten(1).float().cpu().numpy(),
        }
        for tap, value in activations.items():
            pooled = value.float().mean(dim=(2, 3)).cpu().numpy()
            for index, pass_name in enumerate(PASSES):
                record[activation_column(pass_name, tap)] = pooled[index * batch:(index + 1) * batch]
        self.records[step] = record
        return eps

    def table(self, requested: dict[str, np.ndarray]) -> pa.Table:
        """All recorded steps as one long table (rows ordered by step, then trajectory)."""
        steps = sorted(self.records)
        n = len(next(iter(requested.values())))
        t = np.repeat([self.records[s]["t"] for s in steps], n).astype(np.float32)
        columns = {
            "trajectory": np.tile(np.arange(n, dtype=np.int32), len(steps)),
            "step": np.repeat(np.asarray(steps, dtype=np.int32), n),
            "t": t,
            "log_snr": self.sde.log_snr(torch.as_tensor(t, dtype=torch.float64)).numpy().astype(np.float32),
        }
        for name, values in requested.items():
            columns[f"requested_{name}"] = np.tile(np.asarray(values, dtype=np.float64), len(steps))
        arrays = {key: pa.array(value) for key, value in columns.items()}
        vector_columns = [key for key in self.records[steps[0]] if key != "t"]
        for key in vector_columns:
            stacked = np.concatenate([self.records[s][key] for s in steps]).astype(np.float32)
            arrays[key] = pa.FixedSizeListArray.from_arrays(pa.array(stacked.ravel()), stacked.shape[1])
        return pa.table(arrays)


def write(table: pa.Table, path: Path | str, image_shape: tuple[int, ...], taps: list[str], factors: list[dict],
          meta: dict) -> None:
    """``factors``: name, kind and values of each factor (a categorical factor's
    ``requested_<name>`` holds the value's index)."""
    layout = {"image_shape": list(image_shape), "taps": list(taps), "passes": list(PASSES), "factors": factors}
    table = table.replace_schema_metadata({LAYOUT_KEY: json.dumps(layout).encode()})
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
    return [name for name in table.column_names if name in ("state", "denoised") or name.startswith("act.")]
