"""The order in which factors are decided, against the order attributed to Franzese et al. on Shapes3D.

The method in full: docs/science.md, "The published order of Franzese et al.".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.errors import InputError

PUBLISHED_EARLY = frozenset({"floor_hue", "wall_hue", "object_hue", "shape"})
PUBLISHED_LATE = frozenset({"scale", "orientation"})
# The claim under test, in one place. It is a summary of Franzese et al. (arXiv 2410.03368)
# that this project cannot pin to a section or figure; their abstract claims only that
# abstractions "emerge at different stages of the generative process".
CLAIM = "the order attributed to Franzese et al."
CLAIM_CONTENT = "the hues and shape before scale and orientation"
CLAIM_SOURCE = (
    "no section or figure of the paper is cited for it; the abstract claims only that abstractions "
    "emerge at different stages of the generative process"
)


def decided_order(decisions: pd.DataFrame, level: int = 50) -> list[str]:
    """The factors of a decision-time table (columns ``factor``, ``tau_<level>``, one row a
    factor), decided first first: by ``tau_<level>`` from large to small, ties by ``tau_90``
    then name. Factors that are never decided (NaN) are left out."""
    if decisions["factor"].duplicated().any():
        raise InputError("one row per factor expected (select one proxy or experiment first)")
    decided = decisions[decisions[f"tau_{level}"].notna()]
    keys = [f"tau_{level}", "tau_90"] if level != 90 else ["tau_90"]
    ranked = decided.sort_values(keys + ["factor"], ascending=[False] * len(keys) + [True], kind="stable")
    return ranked["factor"].tolist()


def comparable(order: Sequence[str]) -> bool:
    """Whether ``order`` names an early and a late factor of the claim (Shapes3D's factors):
    another data set's order is not compared with it."""
    return bool(set(order) & PUBLISHED_EARLY) and bool(set(order) & PUBLISHED_LATE)


def _published_part(order: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The order's published factors and their group (0 early, 1 late)."""
    if len(set(order)) != len(order):
        raise InputError(f"an order names each factor once, got {list(order)}")
    kept = [name for name in order if name in PUBLISHED_EARLY | PUBLISHED_LATE]
    group = np.asarray([name in PUBLISHED_LATE for name in kept], dtype=np.float64)
    if not group.any() or group.all():
        raise InputError(
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
