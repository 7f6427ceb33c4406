"""Whether a learned information curve has converged to the exact one.

A learned estimate of I(factor; X_t) (the score-difference estimate in its MMSE form, on
the train rows' t grid, and the classifier bound H - CE, on its own evaluation grid) is
compared with the exact curve on the same grid: the mean absolute gap over t, and the
largest excess over H(factor) (no estimate of I can exceed H; an excess is model error).
A curve has converged when its gap is at most GAP_TARGET and it never rises more than
EXCESS_TARGET above H."""

from __future__ import annotations

import pandas as pd

GAP_TARGET = 0.15  # nats: largest mean absolute gap to the exact curve
EXCESS_TARGET = 0.1  # nats: a curve never above H(factor) + this
LEARNED_FORMS = ("mmse_difference",)
BOUND = "classifier_bound"
GAP_COLUMNS = ["factor", "estimate", "mean_gap", "max_excess_over_entropy", "converged"]


def _summary(paired: pd.DataFrame, estimate: str) -> pd.DataFrame:
    """Per factor, from columns factor, learned, exact, entropy (one row per t)."""
    grouped = paired.assign(
        gap=(paired["learned"] - paired["exact"]).abs(), excess=paired["learned"] - paired["entropy"]
    ).groupby("factor")
    frame = pd.DataFrame({"mean_gap": grouped["gap"].mean(), "max_excess_over_entropy": grouped["excess"].max()})
    return frame.reset_index().assign(estimate=estimate)


def _learned_pairs(info: pd.DataFrame, form: str) -> pd.DataFrame:
    train = info[info["distribution"] == "train"]
    exact = train[train["quantity"] == "exact"][["factor", "t", "mean"]].rename(columns={"mean": "exact"})
    learned = train[train["quantity"] == form][["factor", "t", "mean", "factor_entropy"]]
    learned = learned.rename(columns={"mean": "learned", "factor_entropy": "entropy"})
    return learned.merge(exact, on=["factor", "t"])


def _bound_pairs(bound: pd.DataFrame) -> pd.DataFrame:
    return bound[["factor", "t", "bound", "exact", "entropy"]].rename(columns={"bound": "learned"})


def information_gaps(
    info: pd.DataFrame, bound: pd.DataFrame | None = None, forms: tuple[str, ...] = LEARNED_FORMS
) -> pd.DataFrame:
    """One row per (factor, estimate): columns GAP_COLUMNS, in nats.

    ``info``: the information table (columns distribution, quantity, factor, t, mean,
    factor_entropy); ``bound``: the classifier evaluation (columns factor, t, bound, exact,
    entropy), or None; ``forms``: the learned quantities of ``info`` to compare."""
    parts = [_summary(_learned_pairs(info, form), form) for form in forms]
    if bound is not None:
        parts.append(_summary(_bound_pairs(bound), BOUND))
    frame = pd.concat(parts, ignore_index=True)
    frame["converged"] = (frame["mean_gap"] <= GAP_TARGET) & (frame["max_excess_over_entropy"] <= EXCESS_TARGET)
    return frame[GAP_COLUMNS].sort_values(["factor", "estimate"], ignore_index=True)


CONVERGING_OVERLAY = "workflow/configs/cpu-study.yaml"
# The step up from any run on a CPU, then paper scale (a CPU-tier model short of the target).
CONVERGING_NOTE = f"longer training converges it: {CONVERGING_OVERLAY}, then paper scale"


def gap_text(mean_gap: float) -> str:
    """The words the figure and the findings use for an estimate short of the target."""
    return f"model not converged: gap {mean_gap:.2f} nats"


def not_converged_note(gap: pd.Series) -> str:
    """What a figure says of an estimate (one row of information_gaps) that has not
    converged; CONVERGING_NOTE says how to converge it."""
    text = gap_text(gap["mean_gap"])
    if gap["max_excess_over_entropy"] > EXCESS_TARGET:
        text += f"\n(rises {gap['max_excess_over_entropy']:.2f} nats above H)"
    return text
