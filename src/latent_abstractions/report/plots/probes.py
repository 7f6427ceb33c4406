"""The probe figure: held-out probe scores along generation."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd

from ..figure_style import captioned  # also sets the backend and the style
from .layout import legend_columns

# Feature families of the probe table's ``feature`` column (store_layout.py names them):
# the state X_t; a pass's outputs (eps.<pass>, denoised.<pass>: Tweedie's estimate of x_0);
# a pass's taps (act|map|full.<pass>.<tap>); the random network's taps (the control).
# The row of the figure says the pass: uncond (blind to the condition) on top, cond below.
FEATURE_FAMILIES = {
    "state": dict(color="tab:blue", label="state X_t"),
    "output": dict(color="tab:green", label="best network output (eps, denoised)"),
    "taps": dict(color="tab:orange", label="best tap (act, map)"),
    "random": dict(color="tab:gray", label="random network: best tap"),
}
BAYES_STYLE = dict(color="black", lw=2, ls=":", label="Bayes-optimal (exact)")
MEASURED_STYLE = dict(ls="--", alpha=0.8, label="dashed: the factor as drawn")


def feature_family(feature: str) -> str:
    """The family (a key of FEATURE_FAMILIES) of a probe table's feature name."""
    kind, *rest = feature.split(".")
    if kind == "state":
        return "state"
    if kind in ("eps", "denoised"):
        return "output"
    return "random" if rest[0] == "random" else "taps"


def best_features(curves: pd.DataFrame) -> dict[str, str]:
    """Per family, the feature with the highest mean held-out score over t."""
    means = curves.groupby("feature")["score"].mean()
    families = means.index.map(feature_family)
    return {family: means[families == family].idxmax() for family in FEATURE_FAMILIES if (families == family).any()}


def _plot_score(ax, curve: pd.DataFrame, **style):
    curve = curve.sort_values("t")
    return ax.plot(curve["t"], curve["score"].clip(lower=-0.5), marker="o", ms=2.5, **style)[0]


def _probe_panel(ax, rows: pd.DataFrame, handles: dict) -> list[str]:
    """The best feature of each family against the requested factor, and the best one
    against the factor as drawn (dashed); returns the features drawn."""
    requested, measured = rows[rows["target"] == "requested"], rows[rows["target"] == "measured"]
    best = best_features(requested)
    for family, feature in best.items():
        style = FEATURE_FAMILIES[family]
        handles[style["label"]] = _plot_score(ax, requested[requested["feature"] == feature], **style)
    names = list(best.values())
    if len(measured):
        drawn = measured.groupby("feature")["score"].mean().idxmax()
        color = FEATURE_FAMILIES[feature_family(drawn)]["color"]
        _plot_score(ax, measured[measured["feature"] == drawn], color=color, **MEASURED_STYLE)
        handles[MEASURED_STYLE["label"]] = plt.Line2D([], [], color="black", **MEASURED_STYLE)
        names.append(f"drawn:\u00a0{drawn}")  # kept on one line by the title's wrapping
    return names


@captioned(
    "Held-out score of linear probes against generative time, per factor (accuracy for categorical "
    "factors, R^2 for continuous ones): the best feature of each family (the state; the network's "
    "output, eps or the denoised estimate; its block activations; a random network's, the control), "
    "named under each title. Top row: features computed without the condition, which measure what the "
    "trajectory knows, under the exact posterior's Bayes-optimal accuracy (the ceiling of any probe "
    "on the state). Bottom row: features computed with the condition fed in (they hold it even at "
    "pure noise)."
)
def probe_scores(probes: pd.DataFrame, info: pd.DataFrame | None = None) -> plt.Figure:
    """Held-out probe scores against t, one column per factor (accuracy for a categorical
    factor, R^2 for a continuous one), the best feature of each family (FEATURE_FAMILIES)
    per panel, named under its title. Top row: features blind to the condition, which
    measure what the trajectory knows, with the exact posterior's Bayes-optimal accuracy
    (the ceiling of any probe on the state) and, where measured, the probe of the factor
    as drawn (dashed). Bottom row: features computed with the condition fed in: how the
    network represents its condition (they hold it even at pure noise). One legend, below."""
    probes = probes[probes["metric"].isin(["accuracy", "r2"])]
    factors = sorted(probes["factor"].unique())
    fig, axes = plt.subplots(
        2, len(factors), figsize=(4.2 * len(factors), 7.8), sharey=True, squeeze=False, layout="constrained"
    )
    handles = {}
    for column, factor in enumerate(factors):
        rows = probes[probes["factor"] == factor]
        metric = rows["metric"].iloc[0]
        titles = (f"{factor} ({metric}): what the trajectory knows", f"{factor}: the condition's representation")
        for row, sees in ((0, False), (1, True)):
            ax = axes[row][column]
            names = _probe_panel(ax, rows[rows["sees_condition"] == sees], handles)
            if info is not None and not sees and metric == "accuracy":
                bayes = info[
                    (info["distribution"] == "train")
                    & (info["quantity"] == "bayes_accuracy")
                    & (info["factor"] == factor)
                ].sort_values("t")
                handles[BAYES_STYLE["label"]] = ax.plot(bayes["t"], bayes["mean"], **BAYES_STYLE)[0]
            ax.set(xscale="log", ylim=(-0.55, 1.05), xlabel="t (generation runs left to right)")
            ax.invert_xaxis()
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_title(titles[row] + "\n" + textwrap.fill(", ".join(names), 60), fontsize=8)
    for row in axes:
        row[0].set_ylabel("held-out score (R$^2$ clipped at -0.5)")
    fig.legend(
        handles.values(), handles.keys(), loc="outside lower center", ncol=legend_columns(len(factors)), fontsize=8
    )
    return fig
