"""Linear probes: from a feature recorded along the generative trajectories to a generating
factor, many (recorded step x feature x factor) problems fitted at once in batched torch.

The method in full: docs/science.md, "Linear probes".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from ...core.errors import InputError
from ...core.progress import progress
from .lbfgs import fit_softmax
from .linear import Basis, carry, r_squared, ridge
from .softmax import Softmaxes
from .splits import TrajectorySplit

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
CATEGORICAL, CONTINUOUS = "categorical", "continuous"
CATEGORICAL_METRICS = ("accuracy", "balanced_accuracy", "log_loss")
CONTINUOUS_METRICS = ("r2",)


class EncodedFactor(NamedTuple):
    """A validated target: categorical (its distinct ``classes`` and each row's code into
    them) or continuous (``classes`` None, float64 ``values``)."""

    kind: str
    classes: np.ndarray | None
    values: np.ndarray


def _check_finite(x: np.ndarray | torch.Tensor, names: Sequence[str]) -> None:
    """InputError naming the groups (first dim of x) holding NaN or infinite values."""
    if isinstance(x, torch.Tensor):
        finite = torch.isfinite(x).flatten(1).all(1).cpu().numpy()
    else:
        finite = np.isfinite(x).reshape(len(x), -1).all(1)
    if not finite.all():
        bad = [names[i] for i in np.flatnonzero(~finite)]
        raise InputError(f"NaN or infinite feature values in {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else ""))


def _encode_factors(
    targets: Mapping[str, np.ndarray], kinds: Mapping[str, str], n: int, fit_rows: np.ndarray
) -> dict[str, EncodedFactor]:
    """Validated targets: categorical -> (classes, codes), continuous -> float64 values."""
    encoded = {}
    for name, kind in kinds.items():
        if name not in targets:
            raise InputError(f"no target given for factor {name!r}")
        values = np.asarray(targets[name])
        if values.shape != (n,):
            raise InputError(f"target of factor {name!r} has shape {values.shape}, expected ({n},)")
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            raise InputError(f"NaN or infinite target values in factor {name!r}")
        if kind == CATEGORICAL:
            encoded[name] = _encode_categorical(name, values, fit_rows)
        elif kind == CONTINUOUS:
            encoded[name] = _encode_continuous(name, values)
        else:
            raise InputError(f"factor {name!r} has unknown kind {kind!r}; allowed: {CATEGORICAL}, {CONTINUOUS}")
    return encoded


def _encode_categorical(name: str, values: np.ndarray, fit_rows: np.ndarray) -> EncodedFactor:
    """The distinct classes and each row's code; every class must occur in the fit rows."""
    classes, codes = np.unique(values, return_inverse=True)
    if len(classes) < 2:
        only = classes[0] if len(classes) else "none"
        raise InputError(f"categorical factor {name!r} has a single class ({only}): nothing to predict")
    missing = np.setdiff1d(classes, np.unique(values[fit_rows]))
    if len(missing):
        raise InputError(
            f"the split leaves class(es) {missing.tolist()} of factor {name!r} absent from "
            f"the training trajectories (train without validation)"
        )
    return EncodedFactor(CATEGORICAL, classes, codes)


def _encode_continuous(name: str, values: np.ndarray) -> EncodedFactor:
    """The values in float64; a constant factor has nothing to predict."""
    values = values.astype(np.float64)
    if np.ptp(values) == 0:
        raise InputError(f"continuous factor {name!r} is constant ({values[0]}): nothing to predict")
    return EncodedFactor(CONTINUOUS, None, values)


class _Inputs(NamedTuple):
    """The checked inputs of ``fit_probes``: the feature groups as given (one (G, n, d) stack
    if ``stacked``, else G arrays (n, d_g)), a name per group, the row masks (train,
    validation, test), the penalty grid (ascending) and the encoded factors."""

    groups: list
    stacked: bool
    names: list[str]
    masks: tuple[np.ndarray, np.ndarray, np.ndarray]
    grid: list[float]
    encoded: dict[str, EncodedFactor]


def _checked_inputs(
    features: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
    targets: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    trajectory: np.ndarray,
    split: TrajectorySplit,
    penalties: Sequence[float],
    names: Sequence[str] | None,
) -> _Inputs:
    """The inputs of ``fit_probes``, checked; the first problem found raises (the finite
    features are checked last: the costliest pass)."""
    stacked = not isinstance(features, (list, tuple))
    groups = [features] if stacked else list(features)
    total = len(groups[0]) if stacked else len(groups)
    names = list(names) if names is not None else [f"group {i}" for i in range(total)]
    if len(names) != total:  # the caller's own labels, not input data
        raise ValueError(f"{len(names)} names for {total} feature groups")
    if not kinds:
        raise InputError("no factors to probe")
    n = _row_count(groups, stacked)
    trajectory = np.asarray(trajectory)
    if trajectory.shape != (n,):
        raise InputError(f"trajectory ids have shape {trajectory.shape}, expected ({n},)")
    masks = split.rows(trajectory)
    for label, mk in zip(("train", "validation", "test"), masks):
        if not mk.any():
            raise InputError(f"the split leaves no {label} rows")
    grid = sorted(float(p) for p in penalties)
    if not grid or grid[0] <= 0:
        raise InputError(f"penalties must be positive, got {list(penalties)}")
    encoded = _encode_factors(targets, kinds, n, masks[0])
    if stacked:
        _check_finite(groups[0], names)
    else:
        for g, name in zip(groups, names):
            _check_finite(g[None], [name])
    return _Inputs(groups, stacked, names, masks, grid, encoded)


def _row_count(groups: list, stacked: bool) -> int:
    """The rows every feature group holds (one stack (G, n, d), or arrays (n, d_g))."""
    rows = set()
    for g in groups:
        if g.ndim != (3 if stacked else 2):
            raise InputError(
                f"features must be a (groups, rows, dims) stack or a list of (rows, dims) arrays, "
                f"got an array of shape {tuple(g.shape)}"
            )
        rows.add(g.shape[-2])
    if len(rows) != 1:
        raise InputError(f"all feature groups must have the same rows, got row counts {sorted(rows)}")
    return rows.pop()


def _feature_stacks(inputs: _Inputs, dtype: torch.dtype, n_stacks: int) -> list[tuple[np.ndarray, torch.Tensor]]:
    """(group indices, stack (G, n, d)) pairs: a stack as given, or the listed groups of
    similar widths stacked, the narrower ones padded with zero features (they drop out)."""
    groups = inputs.groups
    if inputs.stacked:
        return [(np.arange(len(inputs.names)), torch.as_tensor(groups[0]))]
    stacks = []
    for members in _width_stacks([g.shape[-1] for g in groups], n_stacks):
        width = max(groups[i].shape[-1] for i in members)
        padded = [
            torch.nn.functional.pad(torch.as_tensor(groups[i]).to(dtype), (0, width - groups[i].shape[-1]))
            for i in members
        ]
        stacks.append((members, torch.stack(padded)))
    return stacks


@dataclasses.dataclass
class _Stack:
    """One stack of groups x (G, n, d) sharing rows: the penalty is chosen on the basis of
    the train rows (scored on validation); the probe is refitted on the basis of train +
    validation (scored on test)."""

    penalties: torch.Tensor  # (L,) ascending
    masks: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # train, val, test, trainval
    select: Basis
    refit: Basis
    z_fit: torch.Tensor
    z_val: torch.Tensor
    z_ref: torch.Tensor
    z_test: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor, masks: tuple[np.ndarray, np.ndarray, np.ndarray], grid: list[float]) -> _Stack:
        train, val, test = (torch.as_tensor(mk, device=x.device) for mk in masks)
        trainval = train | val
        select, refit = Basis.fit(x, train), Basis.fit(x, trainval)
        penalties = torch.tensor(grid, dtype=x.dtype, device=x.device)
        return cls(
            penalties,
            (train, val, test, trainval),
            select,
            refit,
            select.apply(x[:, train]),
            select.apply(x[:, val]),
            refit.apply(x[:, trainval]),
            refit.apply(x[:, test]),
        )


def _fit_stack(
    x: torch.Tensor,
    encoded: dict[str, EncodedFactor],
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    grid: list[float],
    tol: float,
    max_iter: int,
) -> dict[str, dict[str, np.ndarray]]:
    """All factors for one stack of groups x (G, n, d) sharing rows and targets."""
    stack, grid64 = _Stack.of(x, masks, grid), np.asarray(grid, dtype=np.float64)
    continuous = {name: e for name, e in encoded.items() if e.kind == CONTINUOUS}
    categorical = {name: e for name, e in encoded.items() if e.kind == CATEGORICAL}
    out = _fit_continuous(stack, continuous, grid64) if continuous else {}
    if categorical:
        out |= _fit_categorical(stack, categorical, grid64, tol, max_iter)
    return out


def _fit_continuous(stack: _Stack, factors: dict[str, EncodedFactor], grid64: np.ndarray) -> dict:
    """Ridge in closed form for the whole penalty grid at once."""
    train, val, test, trainval = stack.masks
    G, L = stack.z_fit.shape[0], len(stack.penalties)
    values = np.stack([e.values for e in factors.values()], 1)
    y = torch.as_tensor(values, dtype=stack.z_fit.dtype, device=stack.z_fit.device)  # (n, F)
    lam = stack.penalties[None, :, None].expand(G, L, len(factors))
    w = ridge(stack.z_fit, stack.select.eig, y[train], lam)  # (G, L, F, q)
    pred_val = torch.einsum("gvq,glfq->glvf", stack.z_val, w)
    mse = ((pred_val - y[val]) ** 2).mean(2)  # (G, L, F)
    best = _argmin_last_tie(mse)  # (G, F)
    chosen = stack.penalties[best]
    w = ridge(stack.z_ref, stack.refit.eig, y[trainval], chosen[:, None, :])[:, 0]  # (G, F, q)
    r2 = r_squared(y[test], torch.einsum("gtq,gfq->gtf", stack.z_test, w))
    return {
        name: {"r2": r2[:, i].double().cpu().numpy(), "penalty": grid64[best[:, i].cpu().numpy()]}
        for i, name in enumerate(factors)
    }


def _fit_categorical(
    stack: _Stack, factors: dict[str, EncodedFactor], grid64: np.ndarray, tol: float, max_iter: int
) -> dict:
    """Batched softmax regressions, the grid from the strongest penalty down, each fit
    starting from the previous one's solution; the chosen one refitted and scored."""
    train, val, test, trainval = stack.masks
    G, dtype = stack.z_fit.shape[0], stack.z_fit.dtype
    n_classes = [len(e.classes) for e in factors.values()]
    codes = torch.as_tensor(np.stack([e.values for e in factors.values()]), device=stack.z_fit.device)  # (F, n)
    soft, soft_val = Softmaxes(n_classes, codes[:, train], dtype), Softmaxes(n_classes, codes[:, val], dtype)
    w, path, val_nll = None, [], []
    for lam in stack.penalties.flip(0):
        w, _ = fit_softmax(stack.z_fit, soft, lam.expand(G, len(factors)), w, tol=tol, max_iter=max_iter)
        path.append(w)
        val_nll.append(soft_val.nll(w @ stack.z_val.mT).mean(-1))  # (G, F)
    best = _argmin_last_tie(torch.stack(val_nll[::-1], 1))  # (G, F)
    path = torch.stack(path[::-1], 1)  # (G, L, C, q)
    index = best[:, soft.col_factor][:, None, :, None].expand(G, 1, soft.C, path.shape[3])
    start = carry(path.gather(1, index)[:, 0], stack.select, stack.refit)  # the chosen fit, in the refit's basis
    soft_ref = Softmaxes(n_classes, codes[:, trainval], dtype)
    w, _ = fit_softmax(stack.z_ref, soft_ref, stack.penalties[best], start, tol=tol, max_iter=max_iter)
    logp = Softmaxes(n_classes, codes[:, test], dtype).log_probs(w @ stack.z_test.mT).double()  # (G, t, F, K)
    truth = codes[:, test].T  # (t, F)
    nll = -logp.gather(-1, truth.expand(G, -1, -1)[..., None])[..., 0]
    correct = (logp.argmax(-1) == truth).double()  # (G, t, F)
    out = {}
    for i, name in enumerate(factors):
        recalls = torch.stack([correct[:, truth[:, i] == c, i].mean(1) for c in torch.unique(truth[:, i])], 1)
        out[name] = {
            "accuracy": correct[..., i].mean(1).cpu().numpy(),
            "balanced_accuracy": recalls.mean(1).cpu().numpy(),
            "log_loss": nll[..., i].mean(1).cpu().numpy(),
            "penalty": grid64[best[:, i].cpu().numpy()],
        }
    return out


def _argmin_last_tie(values: torch.Tensor) -> torch.Tensor:
    """Index of the minimum over dim 1 (the penalty grid, ascending); ties go to the largest
    penalty. NaN (a diverged fit) counts as +inf."""
    v = torch.nan_to_num(values, nan=float("inf")).flip(1)
    return values.shape[1] - 1 - v.argmin(1)


def fit_probes(
    features: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
    targets: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    trajectory: np.ndarray,
    split: TrajectorySplit,
    penalties: Sequence[float] = DEFAULT_PENALTIES,
    names: Sequence[str] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    tol: float = 1e-4,
    max_iter: int = 500,
    n_stacks: int = 4,
) -> dict[str, dict[str, np.ndarray]]:
    """Fit and score a probe for every (group, factor) pair, all in one batched computation.

    ``features``: a stack (G, n, d) (numpy or torch), or a sequence of G arrays (n, d_g) of
    any widths (stacked internally, at most ``n_stacks`` stacks, narrower groups padded with
    zero features, which drop out exactly). A group is e.g. one (recorded step, feature)
    pair; row i of every group belongs to trajectory ``trajectory[i]`` and has the target
    ``targets[factor][i]``. ``kinds`` maps each factor to ``"categorical"`` or
    ``"continuous"``; a categorical target may hold any values, its classes are the distinct
    ones. ``split`` assigns trajectory ids to train / validation / test; ``penalties`` is the
    grid (per-sample L2 penalty, see the module docstring); ``names`` (one per group) name the
    groups in error messages. ``tol``: gradient-norm stopping threshold of the logistic fits.

    Returns ``{factor: {metric: array (G,)}}``, metrics ``accuracy``, ``balanced_accuracy``,
    ``log_loss`` (categorical) or ``r2`` (continuous), and ``penalty`` (the chosen one).
    Computed on ``device``, by default the features' own (the CPU for numpy input).

    Raises a one-line InputError (a ValueError) on: a categorical factor with a single class;
    a class absent from the training trajectories (train without validation); NaN or infinite
    feature or target values (naming the group); a constant continuous factor; an unknown
    kind; missing or mis-shaped targets or trajectory ids; a split leaving train, validation
    or test empty; no factors; non-positive penalties. A ValueError if ``names`` does not
    name every group."""
    inputs = _checked_inputs(features, targets, kinds, trajectory, split, penalties, names)
    total = len(inputs.names)
    results: dict[str, dict[str, np.ndarray]] = {}
    for members, block in progress(_feature_stacks(inputs, dtype, n_stacks), "fit probes", "stack"):
        x = block.to(device=device or block.device, dtype=dtype)
        for factor, metrics in _fit_stack(x, inputs.encoded, inputs.masks, inputs.grid, tol, max_iter).items():
            slot = results.setdefault(factor, {k: np.full(total, np.nan) for k in metrics})
            for k, v in metrics.items():
                slot[k][members] = v
    return {name: results[name] for name in kinds}


def probe_frame(
    step: np.ndarray,
    trajectory: np.ndarray,
    features: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    split: TrajectorySplit,
    penalties: Sequence[float] = DEFAULT_PENALTIES,
    **options,
) -> pd.DataFrame:
    """Probes for every (recorded step, feature, factor) of a trajectory table, as tidy rows.

    One entry per table row: ``step`` and ``trajectory`` (ids, split by ``split``), each
    feature's vectors ``features[name]`` (rows, d_name) and each factor's ``targets[factor]``
    (rows,); ``kinds`` maps factors to ``"categorical"`` / ``"continuous"``. All steps holding
    the same trajectories with the same targets are fitted in one batched call of
    ``fit_probes`` (``options`` go to it). Returns a DataFrame with columns step, feature,
    factor, metric (accuracy, balanced_accuracy, log_loss; or r2), score, penalty (the chosen
    one), sorted by step, feature, factor, metric. Raises InputError as ``fit_probes`` does,
    and on table columns of unequal lengths."""
    import pandas as pd

    step, trajectory = np.asarray(step), np.asarray(trajectory)
    _check_table(step, trajectory, features, targets)
    records = []
    for members in _same_rows_steps(step, trajectory, targets, kinds):
        records += _probe_records(members, trajectory, features, targets, kinds, split, penalties, options)
    frame = pd.DataFrame.from_records(records, columns=["step", "feature", "factor", "metric", "score", "penalty"])
    return frame.sort_values(["step", "feature", "factor", "metric"], ignore_index=True)


def _check_table(
    step: np.ndarray, trajectory: np.ndarray, features: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray]
) -> None:
    """InputError unless every column of the table has one entry per row."""
    n = len(step)
    if trajectory.shape != (n,):
        raise InputError(f"step and trajectory must be 1-D of equal length, got {step.shape} and {trajectory.shape}")
    for name, values in list(features.items()) + list(targets.items()):
        if len(values) != n:
            raise InputError(f"{name!r} has {len(values)} rows, the table {n}")


def _same_rows_steps(
    step: np.ndarray, trajectory: np.ndarray, targets: Mapping[str, np.ndarray], kinds: Mapping[str, str]
) -> list[list[tuple]]:
    """The steps, as (step, its rows sorted by trajectory), grouped by the trajectories and
    targets they hold: each group is fitted in one batched call."""
    batches: dict[bytes, list] = {}
    for s in np.unique(step):
        rows = np.flatnonzero(step == s)
        rows = rows[np.argsort(trajectory[rows], kind="stable")]
        key = trajectory[rows].tobytes() + b"".join(np.asarray(targets[f])[rows].tobytes() for f in kinds)
        batches.setdefault(key, []).append((s, rows))
    return list(batches.values())


def _probe_records(
    members: list[tuple],
    trajectory: np.ndarray,
    features: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    split: TrajectorySplit,
    penalties: Sequence[float],
    options: dict,
) -> list[tuple]:
    """Every feature at the steps ``members`` (which share rows and targets) probed in one
    call, as (step, feature, factor, metric, score, penalty) records."""
    rows0 = members[0][1]
    groups = [(name, s, rows) for name in features for s, rows in members]
    result = fit_probes(
        [np.asarray(features[name])[rows] for name, _, rows in groups],
        {f: np.asarray(targets[f])[rows0] for f in kinds},
        kinds,
        trajectory[rows0],
        split,
        penalties,
        names=[f"feature {name!r} at step {s}" for name, s, _ in groups],
        **options,
    )
    return [
        (int(s), name, factor, metric, float(result[factor][metric][i]), float(result[factor]["penalty"][i]))
        for factor, kind in kinds.items()
        for i, (name, s, _) in enumerate(groups)
        for metric in (CATEGORICAL_METRICS if kind == CATEGORICAL else CONTINUOUS_METRICS)
    ]


def _width_stacks(widths: Sequence[int], n_stacks: int) -> list[np.ndarray]:
    """Split groups into at most ``n_stacks`` stacks of consecutive widths (sorted), minimising
    the padded size sum(stack size * widest member)."""
    order = np.argsort(widths, kind="stable")
    w = np.asarray(widths)[order]
    n = len(w)
    # best[k][i]: minimal cost of the first i sorted groups in k stacks
    best = [[0.0] + [math.inf] * n]
    cut = []
    for _ in range(min(n_stacks, n)):
        row, arg = [0.0] + [math.inf] * n, [0] * (n + 1)
        for i in range(1, n + 1):
            for j in range(i):
                cost = best[-1][j] + (i - j) * w[i - 1]
                if cost < row[i]:
                    row[i], arg[i] = cost, j
        best.append(row)
        cut.append(arg)
    k = min(range(1, len(best)), key=lambda k: best[k][n])
    bounds, i = [], n
    for level in range(k, 0, -1):
        j = cut[level - 1][i]
        bounds.append((j, i))
        i = j
    return [order[a:b] for a, b in reversed(bounds) if b > a]
