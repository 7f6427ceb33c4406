"""Recording a sampler's trajectories: states, denoised estimates and activations at
chosen steps, gathered into the table that trajectories.py defines."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from .nets.unet import ScoreUNet
from .sde import SDE
from .trajectories import MAP_SIZE, activation_column, denoised_column, map_column


class TrajectoryRecorder:
    """The sampler's ``eps_fn`` and ``callback`` in one: at recorded steps it runs the
    conditional and unconditional passes as one batch (and the control network's
    unconditional pass) and keeps state, denoised estimates and activations, pooled
    and as low-resolution maps; elsewhere a single conditional pass."""

    def __init__(self, model: ScoreUNet, sde: SDE, factor_values: torch.Tensor,
                 record_steps: list[int], taps: list[str], control: ScoreUNet | None = None):
        self.model, self.sde, self.taps, self.control = model, sde, list(taps), control
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
        eps, eps_uncond = eps_both[:batch], eps_both[batch:]
        record = {"t": float(t[0]), "state": _numpy(x)}
        for pass_name, pass_eps in (("cond", eps), ("uncond", eps_uncond)):
            record[denoised_column(pass_name)] = _numpy(self.sde.denoise(x, pass_eps, t))
        passes = {"cond": {k: v[:batch] for k, v in activations.items()},
                  "uncond": {k: v[batch:] for k, v in activations.items()}}
        if self.control is not None:
            passes["random"] = self.control(x, t, self.values, torch.zeros_like(self.keep), taps=self.taps)[1]
        for pass_name, by_tap in passes.items():
            for tap, value in by_tap.items():
                record[activation_column(pass_name, tap)] = _numpy(value.float().mean(dim=(2, 3)))
                cells = (min(MAP_SIZE, value.shape[2]), min(MAP_SIZE, value.shape[3]))
                record[map_column(pass_name, tap)] = _numpy(F.adaptive_avg_pool2d(value.float(), cells))
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


def _numpy(value: torch.Tensor) -> np.ndarray:
    """(B, ...) -> (B, features) float32 on the host."""
    return value.flatten(1).float().cpu().numpy()
