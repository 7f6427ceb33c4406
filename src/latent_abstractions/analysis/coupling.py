"""Liang et al.'s coupling claim, tested against 1-D controls (docs/science.md, "Coupling").

A factorized learner learns each axis in the 2-D task as it learns that axis alone; a
coupled one does not: the axes' crossings in the 2-D task move toward each other,
away from their 1-D controls. Each crossing is the training step where a curve (an axis's
accuracy, or the order of its representation) first reaches a level, interpolated in
log-step between the two checkpoints that bracket it, over several seeds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from .representation import ORDERED, checkpoint_rows

# The curves each axis is read from: (name, table, column of the accuracy table or of the
# phase tap's row in the representation table ({axis} is x or y), the levels read). The
# order's upper level is the phase study's threshold: 0.9 sits on the trained plateau.
MEASURES = (
    ("accuracy within 1 px", "accuracy", "accuracy", (0.5, 0.9)),
    ("accuracy within half the spacing", "accuracy", "accuracy_half_spacing", (0.5, 0.9)),
    ("order of the representation (kNN R²)", "representation", "knn_r2_{axis}", (0.5, ORDERED)),
)
ARM_OF_AXIS = {"x": "control_x", "y": "control_y"}


@dataclasses.dataclass(frozen=True)
class Crossing:
    """When a curve first reaches a level: ``step`` interpolated in log-step inside
    (``after``, ``before``]; ``before`` None: never reached (censored at ``after``);
    ``after`` None: reached at the first checkpoint."""

    step: float
    after: int | None
    before: int | None

    @property
    def censored(self) -> bool:
        return self.before is None or self.after is None


UNMEASURED = Crossing(math.nan, None, None)  # a curve with no value (too few conditions)


def crossing(steps: np.ndarray, values: np.ndarray, level: float) -> Crossing:
    if np.isnan(values).all():
        return UNMEASURED
    reached = np.flatnonzero(values >= level)
    if not len(reached):
        return Crossing(math.inf, int(steps[-1]), None)
    i = int(reached[0])
    if i == 0:
        return Crossing(float(steps[0]), None, int(steps[0]))
    a, b = values[i - 1], values[i]
    share = (level - a) / (b - a) if b > a else 1.0
    log_step = math.log(steps[i - 1]) + share * (math.log(steps[i]) - math.log(steps[i - 1]))
    return Crossing(math.exp(log_step), int(steps[i - 1]), int(steps[i]))


def axis_curve(tables: dict, table: str, column: str, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one axis's curve over the training checkpoints."""
    frame = tables[table]
    if table == "accuracy":
        frame = frame[(frame["region"] == "all") & (frame["axis"] == axis)]
    else:
        frame = checkpoint_rows(frame)
    frame = frame.sort_values("training_step")
    return frame["training_step"].to_numpy(), frame[column.format(axis=axis)].to_numpy(dtype=float)


def crossings(runs: dict[str, dict]) -> pd.DataFrame:
    """One row per run, axis, measure and level. ``runs``: experiment -> {"group", "arm",
    "seed", "accuracy", "representation"}. A control reads only its own axis."""
    rows = []
    for experiment, run in sorted(runs.items()):
        axes = [run["arm"][-1]] if run["arm"].startswith("control") else ["x", "y"]
        for axis in axes:
            for measure, table, column, levels in MEASURES:
                steps, values = axis_curve(run, table, column, axis)
                for level in levels:
                    found = crossing(steps, values, level)
                    rows.append(
                        {
                            "experiment": experiment,
                            "group": run["group"],
                            "arm": run["arm"],
                            "seed": run["seed"],
                            "axis": axis,
                            "measure": measure,
                            "level": level,
                            "step": found.step,
                            "after": found.after,
                            "before": found.before,
                            "censored": found.censored,
                            "measured": not math.isnan(found.step),
                        }
                    )
    return pd.DataFrame(rows)


def spread(table: pd.DataFrame) -> pd.DataFrame:
    """Median, range and seed count of every crossing, per group, arm, axis, measure and level."""
    keys = ["group", "arm", "axis", "measure", "level"]
    return (
        table.groupby(keys)
        .agg(
            median=("step", "median"),
            low=("step", "min"),
            high=("step", "max"),
            seeds=("seed", "nunique"),
            censored=("censored", "any"),
            measured=("measured", "all"),
        )
        .reset_index()
    )


def _overlap(a: pd.Series, b: pd.Series) -> bool:
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def _log_range(row: pd.Series) -> tuple[float, float]:
    return math.log(row["low"]), math.log(row["high"])


def verdict(
    spreads: pd.DataFrame, group: str, measure: str, level: float, two_d_arm: str = "vanilla"
) -> tuple[str, str]:
    """(coupled | factorized | inconclusive | not measured, why) for one group, measure and level.

    Factorized: each axis crosses in the 2-D task within its 1-D control's seed range.
    Coupled: an axis leaves that range toward the other axis's 2-D crossing, and the axes'
    gap |log(step_x / step_y)| shrinks from the controls to the 2-D task by more than the
    widest seed range (in log-step) of the four arms. Otherwise inconclusive."""
    chosen = spreads[(spreads["group"] == group) & (spreads["measure"] == measure) & (spreads["level"] == level)]

    def row(arm: str, axis: str) -> pd.Series | None:
        found = chosen[(chosen["arm"] == arm) & (chosen["axis"] == axis)]
        return found.iloc[0] if len(found) else None

    pairs = {axis: (row(two_d_arm, axis), row(ARM_OF_AXIS[axis], axis)) for axis in ("x", "y")}
    if any(two is None or one is None for two, one in pairs.values()):
        return "inconclusive", "an arm is missing"
    if not all(two["measured"] and one["measured"] for two, one in pairs.values()):
        return "not measured", "an arm has too few conditions for this measure"
    if any(two["censored"] or one["censored"] for two, one in pairs.values()):
        return "inconclusive", "a crossing falls outside the checkpoints in some seed (censored)"
    departed = {axis: not _overlap(two, one) for axis, (two, one) in pairs.items()}
    if not any(departed.values()):
        return "factorized", "each axis crosses in the 2-D task within the seed range of its 1-D control"
    log_median = {
        axis: {k: math.log(r["median"]) for k, r in zip(("two", "one"), rows)} for axis, rows in pairs.items()
    }
    toward = all(
        abs(log_median[a]["two"] - log_median[b]["two"]) < abs(log_median[a]["one"] - log_median[b]["two"])
        for a, b in (("x", "y"), ("y", "x"))
        if departed[a]
    )
    gap_two = abs(log_median["x"]["two"] - log_median["y"]["two"])
    gap_one = abs(log_median["x"]["one"] - log_median["y"]["one"])
    spread = max(high - low for rows in pairs.values() for low, high in map(_log_range, rows))
    moved = ", ".join(axis for axis, away in departed.items() if away)
    shrink = f"the gap shrinks by {gap_one - gap_two:.2f} in log-step against a seed spread of {spread:.2f}"
    if not toward:
        return "inconclusive", f"{moved} leaves its 1-D control's seed range, away from the other axis"
    if gap_one - gap_two > spread:
        return "coupled", f"{moved} leaves its 1-D control's seed range toward the other axis; {shrink}"
    return "inconclusive", f"{moved} leaves its 1-D control's seed range toward the other axis, but {shrink}"


def dropout_shift(spreads: pd.DataFrame, group: str, measure: str, level: float) -> str | None:
    """Whether the masked 2-D model's crossings leave the vanilla model's seed range."""
    chosen = spreads[(spreads["group"] == group) & (spreads["measure"] == measure) & (spreads["level"] == level)]
    masked, vanilla = chosen[chosen["arm"] == "masked"], chosen[chosen["arm"] == "vanilla"]
    if masked.empty or vanilla.empty:
        return None
    moved = []
    for axis in ("x", "y"):
        m, v = masked[masked["axis"] == axis], vanilla[vanilla["axis"] == axis]
        if not (len(m) and len(v)) or m.iloc[0]["censored"] or v.iloc[0]["censored"]:
            continue  # a crossing outside the snapshots cannot be said to move
        if not _overlap(m.iloc[0], v.iloc[0]):
            moved.append(axis)
    return ", ".join(moved) if moved else "neither axis"
