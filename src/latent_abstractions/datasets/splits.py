"""Train/test split policies, stored as a ``split`` column ("train" or "test") of the
factor table; training reads only the "train" rows.

- ``none``: everything is "train".
- ``random``: a seeded random ``test_fraction`` of the rows.
- ``region`` (x/y data such as bumps): centres inside a held-out window are "test":
  ``centre`` (a size x size window in the middle of the centres' range), ``corner``
  (the window at the top-left of the range) or ``stripe`` (a band of width ``size``
  in x across all y, through the middle).
- ``combinations``: rows whose factors all take one of the listed values, e.g.
  ``{shape: [0], object_hue: [0, 1]}``, are "test" (compositional generalisation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import InputError
from ..core.factors import Factor


class SplitError(InputError):
    """A split policy that cannot be applied to the data set (empty side, unknown factor)."""


def _region_mask(factors: pd.DataFrame, region: str, size: float) -> np.ndarray:
    if "y" not in factors or "x" not in factors:
        raise SplitError("region splits need factors x and y")
    x, y = factors["x"].to_numpy(), factors["y"].to_numpy()
    mid_x, mid_y = (x.min() + x.max()) / 2, (y.min() + y.max()) / 2
    if region == "centre":
        return (np.abs(x - mid_x) <= size / 2) & (np.abs(y - mid_y) <= size / 2)
    if region == "corner":
        return (x - x.min() < size) & (y - y.min() < size)
    if region == "stripe":
        return np.abs(x - mid_x) <= size / 2
    raise SplitError(f"unknown region {region!r}; allowed: centre, corner, stripe")


def _combination_mask(
    factors: pd.DataFrame, factor_table: list[Factor], held_out: dict[str, list[float]]
) -> np.ndarray:
    known = {factor.name: factor for factor in factor_table}
    mask = np.ones(len(factors), dtype=bool)
    for name, values in held_out.items():
        if name not in known:
            raise SplitError(f"split.held_out: unknown factor {name!r}; the data set has: {', '.join(known)}")
        missing = [v for v in values if not np.any(np.isclose(known[name].values, v))]
        if missing:
            raise SplitError(
                f"split.held_out.{name}: values {missing} not in the data set's {list(known[name].values)}"
            )
        mask &= np.isclose(factors[name].to_numpy()[:, None], np.asarray(values, dtype=float)[None, :]).any(axis=1)
    return mask


def split_column(factors: pd.DataFrame, factor_table: list[Factor], policy: dict) -> np.ndarray:
    """ "train"/"test" per row under ``policy``; an empty side is an error."""
    kind = policy["kind"]
    n = len(factors)
    if kind == "none":
        test = np.zeros(n, dtype=bool)
    elif kind == "random":
        order = np.random.default_rng(policy["seed"]).permutation(n)
        test = np.zeros(n, dtype=bool)
        test[order[: int(round(policy["test_fraction"] * n))]] = True
    elif kind == "region":
        test = _region_mask(factors, policy["region"], policy["size"])
    elif kind == "combinations":
        test = _combination_mask(factors, factor_table, policy["held_out"])
    else:
        raise SplitError(f"unknown split kind {kind!r}; allowed: none, random, region, combinations")
    if kind != "none" and not test.any():
        raise SplitError(f"split {kind}: the held-out set is empty ({policy})")
    if test.all():
        raise SplitError(f"split {kind}: nothing is left for training ({policy})")
    return np.where(test, "test", "train")
