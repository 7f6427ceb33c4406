"""Sampling and recording trajectories: what the three sampling stages share.

The method in full: docs/data.md, "Recording trajectories".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import InputError
from ..core.factors import Factor
from ..diffusion.nets.unet import ScoreUNet
from ..diffusion.sde import SDE
from ..store.store_layout import (
    NETWORK_PASSES,
    activation_column,
    denoised_column,
    eps_column,
    full_map_column,
    map_cells,
    map_column,
)

# Independent families of random streams, one per use (the second key of stream_seed).
STREAM_SAMPLE, STREAM_FORK_PARENT, STREAM_FORK_BRANCH, STREAM_FORWARD_BACKWARD = 0, 1, 2, 3


def stream_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for the stream named by ``keys`` (non-negative ints) under ``seed``."""
    words = np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class BlockNetwork:
    """``model(x, t, values, keep, taps)`` evaluated ``block`` rows at a time, the last block
    padded with copies of the first row (``block`` 0: all rows at once).

    ``every_call_taps`` (a compiled network): every call reads these taps and returns
    those asked for, so that with a fixed ``block`` the network sees one input shape and
    one set of outputs, and compiles once per stage."""

    def __init__(self, model: ScoreUNet, block: int, every_call_taps: Sequence[str] | None = None):
        self.model, self.block = model, int(block)
        self.every_call_taps = None if every_call_taps is None else list(every_call_taps)

    def __call__(self, x, t, values, keep, taps=()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.every_call_taps is None:
            return self._blocks(x, t, values, keep, taps)
        eps, activations = self._blocks(x, t, values, keep, self.every_call_taps)
        return eps, {name: value for name, value in activations.items() if name in taps}

    def _blocks(self, x, t, values, keep, taps) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.block <= 0:
            return self.model(x, t, values, keep, taps=taps)
        rows = x.shape[0]
        pad = (-rows) % self.block
        if pad:
            x, t, values, keep = (torch.cat([v, v[:1].expand(pad, *v.shape[1:])]) for v in (x, t, values, keep))
        outputs = [
            self.model(
                x[i : i + self.block],
                t[i : i + self.block],
                values[i : i + self.block],
                keep[i : i + self.block],
                taps=taps,
            )
            for i in range(0, rows + pad, self.block)
        ]
        if len(outputs) == 1 and not pad:
            return outputs[0]
        eps = torch.cat([o[0] for o in outputs])[:rows]
        return eps, {name: torch.cat([o[1][name] for o in outputs])[:rows] for name in outputs[0][1]}


def _host(value: torch.Tensor, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """(B, ...) -> (B, features) on the host."""
    return value.flatten(1).to(dtype).cpu().numpy()


class TrajectoryRecorder:
    """The sampler's ``eps_fn``.

    ``factor_values`` (B, n_factors): the network's factor input; ``keep`` (B, n_factors)
    bool: which factors are fed in (default: all; none: unconditional sampling, and no
    ``cond`` pass). The sampler follows eps_uncond + ``guidance`` (eps_cond - eps_uncond):
    1 is the plain conditional pass (one forward pass per step), 0 the unconditional one.
    At ``record_steps`` the cond and uncond passes run as one batch with the ``taps``
    (and ``full_maps``) and ``records[step]`` gets every column of store_layout.py;
    with ``state_only`` just the state. ``control``: a random network whose
    unconditional pass is recorded too (pass ``random``). ``one_shape`` (a compiled
    network, with a ``block``): every evaluation has one shape and reads every tap."""

    def __init__(
        self,
        model: ScoreUNet,
        sde: SDE,
        factor_values: torch.Tensor,
        record_steps: Sequence[int],
        taps: Sequence[str],
        control: ScoreUNet | None = None,
        *,
        keep: torch.Tensor | None = None,
        guidance: float = 1.0,
        full_maps: Sequence[str] = (),
        block: int = 0,
        state_only: bool = False,
        one_shape: bool = False,
    ):
        if guidance < 0:
            raise ValueError(f"guidance scale {guidance} must be >= 0")
        if one_shape and block <= 0:
            raise ValueError("one network input shape needs a block size")
        every_call = list(dict.fromkeys([*taps, *full_maps])) if one_shape else None
        self.network, self.sde = BlockNetwork(model, block, every_call), sde
        self.control = None if control is None else BlockNetwork(control, block)
        self.values = factor_values
        self.keep = (
            torch.ones(factor_values.shape, dtype=torch.bool, device=factor_values.device)
            if keep is None
            else keep.to(factor_values.device)
        )
        self.null = torch.zeros_like(self.keep)
        self.conditional = bool(self.keep.any())
        self.guidance = float(guidance)
        self.taps, self.full_maps = list(taps), list(full_maps)
        self.record_steps, self.state_only = set(int(s) for s in record_steps), state_only
        self.passes = (["cond"] if self.conditional else []) + ["uncond"] + (["random"] if control is not None else [])
        self.records: dict[int, dict[str, np.ndarray]] = {}
        self.times: dict[int, float] = {}

    def _both(self, x, t, taps=()):
        """cond and uncond passes as one batch: (eps_cond, eps_uncond, activations of each)."""
        batch = x.shape[0]
        eps, activations = self.network(
            torch.cat([x, x]),
            torch.cat([t, t]),
            torch.cat([self.values, self.values]),
            torch.cat([self.keep, self.null]),
            taps,
        )
        return (
            eps[:batch],
            eps[batch:],
            {k: v[:batch] for k, v in activations.items()},
            {k: v[batch:] for k, v in activations.items()},
        )

    def drive(self, eps_cond: torch.Tensor | None, eps_uncond: torch.Tensor | None) -> torch.Tensor:
        if eps_cond is None:
            return eps_uncond
        if self.guidance == 1.0:
            return eps_cond
        return eps_uncond + self.guidance * (eps_cond - eps_uncond)

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the sampler follows, with as few passes as that needs."""
        if not self.conditional:
            return self.network(x, t, self.values, self.null)[0]
        if self.guidance == 1.0:
            return self.network(x, t, self.values, self.keep)[0]
        eps_cond, eps_uncond, _, _ = self._both(x, t)
        return self.drive(eps_cond, eps_uncond)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        if step not in self.record_steps:
            return self.eps(x, t)
        self.times[step] = float(t[0])
        if self.state_only:
            self.records[step] = {"state": _host(x)}
            return self.eps(x, t)
        taps = list(dict.fromkeys(self.taps + self.full_maps))
        if self.conditional:
            eps_cond, eps_uncond, act_cond, act_uncond = self._both(x, t, taps)
            by_pass = {"cond": (eps_cond, act_cond), "uncond": (eps_uncond, act_uncond)}
        else:
            eps_uncond, act_uncond = self.network(x, t, self.values, self.null, taps)
            eps_cond, by_pass = None, {"uncond": (eps_uncond, act_uncond)}
        if self.control is not None:
            by_pass["random"] = (None, self.control(x, t, self.values, self.null, taps)[1])
        record = {"state": _host(x)}
        for pass_name in NETWORK_PASSES:
            if pass_name in by_pass:
                pass_eps = by_pass[pass_name][0]
                record[eps_column(pass_name)] = _host(pass_eps)
                record[denoised_column(pass_name)] = _host(self.sde.denoise(x, pass_eps, t))
        for pass_name, (_, activations) in by_pass.items():
            for tap in self.taps:
                value = activations[tap].float()
                record[activation_column(pass_name, tap)] = _host(value.mean(dim=(2, 3)))
                record[map_column(pass_name, tap)] = _host(F.adaptive_avg_pool2d(value, map_cells(*value.shape[2:])))
            for tap in self.full_maps:
                record[full_map_column(pass_name, tap)] = _host(activations[tap], torch.float16)
        self.records[step] = record
        return self.drive(eps_cond, eps_uncond)


def tap_shapes(
    model: ScoreUNet,
    image_shape: Sequence[int],
    n_factors: int,
    taps: Sequence[str],
    device: torch.device | str = "cpu",
) -> dict[str, list[int]]:
    """(channels, height, width) of each tap, from one forward pass of one image."""
    if not taps:
        return {}
    model = getattr(model, "_orig_mod", model)  # a compiled network's module: one image is no shape to compile for
    x = torch.zeros((1, *image_shape), device=device)
    values = torch.zeros((1, n_factors), device=device)
    with torch.no_grad():
        _, activations = model(x, torch.ones(1, device=device), values, values.bool(), taps=list(taps))
    return {tap: list(activations[tap].shape[1:]) for tap in taps}


def time_columns(sde: SDE, times: torch.Tensor, steps: Sequence[int]) -> tuple[list[float], list[float]]:
    """t and log-SNR of grid ``steps`` as the stores hold them (float32)."""
    t = times[list(steps)].float()
    log_snr = sde.log_snr(t.double()).float()
    return [float(v) for v in t], [float(v) for v in log_snr]


# --- params --------------------------------------------------------------------------------------


def resolve_condition(condition, factors: Sequence[Factor], where: str) -> list[str]:
    """``condition``: "all" or a list of factor names (empty: unconditional) -> the names,
    in the network's order."""
    names = [f.name for f in factors]
    if condition == "all":
        return names
    unknown = [name for name in condition if name not in names]
    if unknown:
        raise InputError(f"{where} lists unknown factor {', '.join(unknown)}; the model knows: {', '.join(names)}")
    return [name for name in names if name in condition]


def keep_mask(factors: Sequence[Factor], names: Sequence[str], rows: int) -> torch.Tensor:
    """(rows, n_factors) bool: which factors the network is fed (those ``names``)."""
    return torch.tensor([[f.name in names for f in factors]] * rows, dtype=torch.bool).reshape(rows, len(factors))


def factor_grid(factor: Factor) -> np.ndarray:
    """What the network is conditioned with: the values of a continuous factor, the
    value indices of a categorical one."""
    if factor.kind == "continuous":
        return np.asarray(factor.values, dtype=np.float64)
    return np.arange(factor.cardinality, dtype=np.float64)


def condition_grid(factors: Sequence[Factor]) -> dict[str, np.ndarray]:
    """:func:`factor_grid` of each factor, by name."""
    return {factor.name: factor_grid(factor) for factor in factors}


def factor_input(factors: Sequence[Factor], requested: dict[str, np.ndarray], rows: int) -> np.ndarray:
    """(rows, n_factors) network input: requested values, 0 for a factor not requested."""
    values = np.zeros((rows, len(factors)), dtype=np.float32)
    for index, factor in enumerate(factors):
        if factor.name in requested:
            values[:, index] = requested[factor.name]
    return values


def recorded_steps(selection: dict, times: torch.Tensor, sde: SDE, where: str) -> list[int]:
    """Steps of the time grid ``times`` (T down to t_end) that a time selection names:
    ``{kind: log_snr, count}`` (count times evenly in log-SNR from T to t_end, both
    included), ``{kind: steps, steps}`` (grid indices 0..steps) or ``{kind: times, times}``
    (t values in [t_end, T]). A time is taken at the grid step nearest in log-SNR; two
    falling on one step, or a time outside the grid, is an :class:`InputError` naming
    ``where``."""
    choose = {"steps": _chosen_steps, "times": _chosen_times, "log_snr": _chosen_log_snrs}.get(selection["kind"])
    if choose is None:
        raise InputError(f"{where}.kind: unknown time selection {selection['kind']!r}; allowed: log_snr, steps, times")
    chosen, labels = choose(selection, times.double(), sde, where)
    steps = len(times) - 1
    seen: dict[int, str] = {}
    for step, label in zip(chosen, labels):
        if step in seen:
            raise InputError(
                f"{where}: {seen[step]} and {label} fall on the same step {step} of the {steps}-step grid; "
                "ask for fewer times or more steps"
            )
        seen[step] = label
    return sorted(seen)


def steps_before_end(selection: dict, times: torch.Tensor, sde: SDE, where: str, what: str = "time") -> list[int]:
    """The steps a time selection names on the grid ``times``, t_end (its last step) left
    out, as nothing happens after it; an :class:`InputError` when none is left."""
    steps = [s for s in recorded_steps(selection, times, sde, where) if s != len(times) - 1]
    if not steps:
        raise InputError(f"{where}: no {what} before t_end")
    return steps


def _nearest_steps(log_snr: torch.Tensor, grid: torch.Tensor, sde: SDE) -> list[int]:
    """The steps of ``grid`` nearest in log-SNR to each of ``log_snr``."""
    return (log_snr[:, None] - sde.log_snr(grid)[None, :]).abs().argmin(dim=1).tolist()


def _chosen_steps(selection: dict, grid: torch.Tensor, sde: SDE, where: str) -> tuple[list[int], list[str]]:
    steps = len(grid) - 1
    chosen = [int(s) for s in selection["steps"]]
    outside = [s for s in chosen if not 0 <= s <= steps]
    if outside:
        raise InputError(f"{where}.steps: {outside[0]} is not a step of the {steps}-step grid (0..{steps})")
    return chosen, [str(s) for s in chosen]


def _chosen_times(selection: dict, grid: torch.Tensor, sde: SDE, where: str) -> tuple[list[int], list[str]]:
    t_max, t_end = float(grid[0]), float(grid[-1])
    values = [float(v) for v in selection["times"]]
    for value in values:
        if not 0.0 < value <= sde.T:
            raise InputError(f"{where}.times: {value:g} is outside (0, T] = (0, {sde.T:g}]")
        if value < t_end * (1 - 1e-6) or value > t_max * (1 + 1e-6):
            raise InputError(f"{where}.times: {value:g} is outside the sampled range [{t_end:g}, {t_max:g}]")
    chosen = _nearest_steps(sde.log_snr(torch.tensor(values, dtype=torch.float64)), grid, sde)
    return chosen, [f"t = {v:g}" for v in values]


def _chosen_log_snrs(selection: dict, grid: torch.Tensor, sde: SDE, where: str) -> tuple[list[int], list[str]]:
    count = int(selection["count"])
    if count > len(grid):
        raise InputError(f"{where}.count: {count} times do not fit on a grid of {len(grid)} times")
    grid_log_snr = sde.log_snr(grid)
    targets = torch.linspace(float(grid_log_snr[0]), float(grid_log_snr[-1]), count, dtype=torch.float64)
    chosen = [0] if count == 1 else _nearest_steps(targets, grid, sde)
    return chosen, [f"log-SNR {float(v):.3g}" for v in targets]
