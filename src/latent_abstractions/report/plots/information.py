"""The information figure: I(factor; X_t) along generation, with the exact curve and its bound."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ...analysis.convergence import CONVERGING_NOTE, information_gaps, not_converged_note
from ..figure_style import captioned  # also sets the backend and the style
from .layout import legend_columns

INFORMATION_STYLES = {
    "exact": dict(color="black", ls="--", label="exact (train rows)"),
    "mmse_difference": dict(color="tab:green", lw=2, label="learned: score difference (MMSE form)"),
    "orthogonal": dict(color="tab:blue", lw=0.8, ls=":", label="diagnostic: orthogonal form (MINDE)"),
    "classifier_bound": dict(color="tab:orange", label="classifier bound H - CE"),
    "held_out_exact": dict(color="grey", ls=":", label="exact (held-out rows)"),
}
ESTIMATE_NAMES = {"mmse_difference": "MMSE form", "classifier_bound": "classifier bound"}
ENTROPY_STYLE = dict(color="grey", lw=0.8, ls="-.", label="H(factor)")
NOTE_LINE_FRACTION = 0.06  # of a panel's height (about 160 points): one line of a 7-point note


def information_curves(info: pd.DataFrame, bound: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The curves the information figure draws, each with columns factor, t, log_snr, mean, stderr."""
    train = info[info["distribution"] == "train"]
    curves = {name: train[train["quantity"] == name] for name in ("exact", "mmse_difference", "orthogonal")}
    held_out = info[(info["distribution"] == "held_out") & (info["quantity"] == "exact")]
    if len(held_out):
        curves["held_out_exact"] = held_out
    if bound is not None:
        curves["classifier_bound"] = bound.rename(columns={"bound": "mean", "bound_se": "stderr"})
    return curves


def information_notes(gaps: pd.DataFrame, peak: float | None) -> list[tuple[str, str]]:
    """(colour, text) of each estimate that has not converged and how to converge it, and
    how far the learned curve goes where it leaves the axis."""
    unconverged = gaps[~gaps["converged"]]
    notes = [
        (INFORMATION_STYLES[gap["estimate"]]["color"], f"{ESTIMATE_NAMES[gap['estimate']]}: " + not_converged_note(gap))
        for _, gap in unconverged.iterrows()
    ]
    if len(unconverged):
        notes.append(("black", CONVERGING_NOTE))
    if peak is not None:
        notes.append((INFORMATION_STYLES["mmse_difference"]["color"], f"learned curve peaks at {peak:.2f} nats"))
    return notes


def _note_lines(notes: list[tuple[str, str]]) -> int:
    return sum(text.count("\n") + 1 for _, text in notes)


def _headroom(entropy: float, lines: int) -> tuple[float, float]:
    """y limits from -0.25 H to at least 1.3 H, with room above H for ``lines`` of notes."""
    bottom, room = -0.25 * entropy, lines * NOTE_LINE_FRACTION + 0.04
    return bottom, max(1.3 * entropy, (entropy - room * bottom) / (1 - room))


def _draw_notes(ax, notes: list[tuple[str, str]]) -> None:
    """The notes stacked at the top left of a panel, above the H line."""
    offset = -3
    for color, text in notes:
        ax.annotate(
            text,
            (0.02, 1.0),
            xycoords="axes fraction",
            xytext=(0, offset),
            textcoords="offset points",
            va="top",
            fontsize=7,
            color=color,
            zorder=5,
            bbox=dict(facecolor="white", alpha=0.8, lw=0, pad=0.5),
        )
        offset -= 8.5 * (text.count("\n") + 1) + 1


@captioned(
    "I(factor; X_t) in nats against t (top) and log-SNR (bottom): the learned score-difference "
    "estimate (MMSE form) and the classifier bound, with bands of two standard errors, beside the "
    "exact value on the training rows and H(factor). The dotted orthogonal (MINDE) form is a "
    "diagnostic: it adds both passes' errors, so where it leaves the MMSE form the model is "
    'imperfect. A learned curve more than 0.15 nats from the exact one on average is marked "model '
    'not converged" with its gap and the overlay that converges it: there the model, not the '
    "estimator, is wrong (the estimator driven by exact scores is tested to 0.05 nats)."
)
def mutual_information(info: pd.DataFrame, bound: pd.DataFrame | None = None) -> plt.Figure:
    """I(factor; X_t) against t (top) and against log-SNR (bottom): both forms of the learned
    score-difference estimate and the classifier bound, each with a band of two standard
    errors, beside the exact curve of the train rows and H(factor). A learned curve that
    has not converged (convergence.information_gaps) says so on its panel. One legend, below."""
    curves = information_curves(info, bound)
    gaps = information_gaps(info, bound)
    entropy = info[info["distribution"] == "train"].groupby("factor")["factor_entropy"].first()
    factors = sorted(entropy.index)
    fig, axes = plt.subplots(2, len(factors), figsize=(4 * len(factors), 7.6), squeeze=False, layout="constrained")
    handles = {}
    for column, factor in enumerate(factors):
        for name, curve in curves.items():
            curve = curve[curve["factor"] == factor].sort_values("t")
            style = INFORMATION_STYLES[name]
            for ax, x in ((axes[0][column], curve["t"]), (axes[1][column], curve["log_snr"])):
                handles[style["label"]] = ax.plot(x, curve["mean"], **style)[0]
                ax.fill_between(
                    x,
                    curve["mean"] - 2 * curve["stderr"],
                    curve["mean"] + 2 * curve["stderr"],
                    color=style["color"],
                    alpha=0.15,
                    lw=0,
                )
        learned = curves["mmse_difference"]
        peak = learned.loc[learned["factor"] == factor, "mean"].max()
        notes = information_notes(gaps[gaps["factor"] == factor], None)
        limits = _headroom(entropy[factor], _note_lines(notes) + 1)
        if peak > limits[1]:  # the axis stops short of the learned curve: say how far it goes
            notes = information_notes(gaps[gaps["factor"] == factor], peak)
        if learned.empty:  # a network that cannot drop one factor's condition (estimate_information)
            notes.append((INFORMATION_STYLES["mmse_difference"]["color"], "no learned estimate for this network"))
        for ax in axes[:, column]:
            handles[ENTROPY_STYLE["label"]] = ax.axhline(entropy[factor], **ENTROPY_STYLE)
            ax.set_ylim(*limits)
            _draw_notes(ax, notes)
        axes[0][column].set(title=f"I({factor}; X_t)", xscale="log", xlabel="t (generation runs left to right)")
        axes[0][column].invert_xaxis()
        axes[1][column].set(xlabel="log SNR = log(alpha_t^2 / sigma_t^2)")
    for row in axes:
        row[0].set_ylabel("nats")
    fig.legend(
        handles.values(), handles.keys(), loc="outside lower center", ncol=legend_columns(len(factors)), fontsize=8
    )
    return fig
