"""The order in which factors are decided, against the published finding on Shapes3D.

Franzese et al. (arXiv 2410.03368) find that a diffusion model trained on Shapes3D
decides the three hues and the shape early along generation, and scale and orientation
late. ``PUBLISHED_EARLY`` and ``PUBLISHED_LATE`` hold the two groups; the order of the
factors inside a group is not part of the finding.

An *order* is a list of factor names, decided first first: ``decided_order`` reads it
from a decision-time table (order.py's layout: one row per factor, ``tau_50`` and
``tau_90`` in t; generation runs from t = 1 down, so a larger tau is decided earlier).
Two comparisons with the finding, over the published factors the order holds (a factor
the data set lacks, or one never decided, is left out):

- ``agrees_with_published``: every early factor comes before every late one;
- ``published_rank_agreement``: Spearman's rho between each factor's position in the
  order (1, 2, ...) and its published group, as tied ranks (the early factors share the
  mean of the first ranks, the late ones the mean of the last). With 4 early and 2 late
  factors rho ranges over [-0.83, 0.83], its maximum reached exactly when the order
  agrees, its minimum when it is reversed (all late before all early).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PUBLISHED_EARLY = frozenset({"floor_hue", "wall_hue", "object_hue", "shape"})
PUBLISHED_LATE = frozenset({"scale", "orientation"})


def decided_order(decisions: pd.DataFrame, level: int = 50) -> list[str]:
    """The factors of a decision-time table (columns ``factor``, ``tau_<level>``, one row a
    factor), decided first first: by ``tau_<level>`` from large to small, ties by ``tau_90``
    then name. Factors that are never decided (NaN) are left out."""
    if decisions["factor"].duplicated().any():
        raise ValueError("one row per factor expected (select one proxy or experiment first)")
    decided = decisions[decisions[f"tau_{level}"].notna()]
    keys = [f"tau_{level}", "tau_90"] if level != 90 else ["tau_90"]
    ranked = decided.sort_values(keys + ["factor"], ascending=[False] * len(keys) + [True], kind="stable")
    return ranked["factor"].tolist()


def _published_part(order: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The order's published factors and their group (0 early, 1 late)."""
    if len(set(order)) != len(order):
        raise ValueError(f"an order names each factor once, got {list(order)}")
    kept = [name for name in order if name in PUBLISHED_EARLY | PUBLISHED_LATE]
    group = np.asarray([name in PUBLISHED_LATE for name in kept], dtype=np.float64)
    if not group.any() or group.all():
        raise ValueError(
            f"order {list(order)} needs an early ({', '.join(sorted(PUBLISHED_EARLY))}) "
            f"and a late ({', '.join(sorted(PUBLISHED_LATE))}) factor to compare"
        )
    return kept, group


def agrees_with_published(order: Sequence[str]) -> bool:
    """Whether every published early factor in ``order`` comes before every late one."""
    _, group = _published_part(order)
    return bool(np.all(np.diff(group) >= 0))


def published_rank_agreement(order: Sequence[str]) -> float:
    """Spearman's rho of the order's positions against the published groups (see the module)."""
    _, group = _published_part(order)
    position = np.arange(1.0, len(group) + 1)
    tied_group = pd.Series(group).rank(method="average").to_numpy()
    return float(np.corrcoef(position, tied_group)[0, 1])


def compare_with_published(decisions: pd.DataFrame, level: int = 50) -> dict:
    """For a report line: ``order`` (list), ``text`` ("floor_hue, wall_hue, ..."),
    ``agrees`` and ``rank_agreement`` of one experiment's decision-time table."""
    order = decided_order(decisions, level)
    return {
        "order": order,
        "text": ", ".join(order),
        "agrees": agrees_with_published(order),
        "rank_agreement": published_rank_agreement(order),
    }
