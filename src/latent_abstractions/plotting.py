"""Figures, each a function from tidy tables to a matplotlib Figure (no file I/O here)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import figure_style  # noqa: F401 (imported for its effect: the backend and the style)
from .order import fraction_covered
from .pixels import model_range


def probe_scores(probes: pd.DataFrame, info: pd.DataFrame | None = None) -> plt.Figure:
    """Held-out probe scores against t, one column per factor (accuracy for a categorical
    factor, R^2 for a continuous one). Top row: features blind to the condition, which
    measure what the trajectory knows, with the exact posterior's Bayes-optimal accuracy
    (the ceiling of any probe on the state) and, where measured, the probe of the factor
    as drawn (dashed). Bottom row: features computed with the condition fed in: how the
    network represents its condition (they hold it even at pure noise)."""
    probes = probes[probes["metric"].isin(["accuracy", "r2"])]
    factors = sorted(probes["factor"].unique())
    fig, axes = plt.subplots(2, len(factors), figsize=(4.2 * len(factors), 7.2), sharey=True, squeeze=False)
    for column, factor in enumerate(factors):
        rows = probes[probes["factor"] == factor]
        for row, sees in ((0, False), (1, True)):
            ax = axes[row][column]
            chosen = rows[rows["sees_condition"] == sees]
            for (feature, target), curve in chosen.groupby(["feature", "target"]):
                curve = curve.sort_values("t")
                line = ax.plot(curve["t"], curve["score"].clip(lower=-0.5), marker="o", ms=2.5,
                               ls="--" if target == "measured" else "-",
                               label=feature + (" (measured)" if target == "measured" else ""))
                if target == "measured":
                    line[0].set_alpha(0.7)
            if info is not None and not sees and rows["metric"].iloc[0] == "accuracy":
                bayes = info[(info["distribution"] == "train") & (info["quantity"] == "bayes_accuracy")
                             & (info["factor"] == factor)].sort_values("t")
                ax.plot(bayes["t"], bayes["mean"], color="black", lw=2, ls=":", label="Bayes-optimal (exact)")
            ax.set(xscale="log", ylim=(-0.55, 1.05), xlabel="t (generation runs left to right)")
            ax.invert_xaxis()
            ax.axhline(0, color="grey", lw=0.5)
            ax.legend(fontsize=6, loc="upper left")
        metric = rows["metric"].iloc[0]
        axes[0][column].set_title(f"{factor} ({metric}): what the trajectory knows")
        axes[1][column].set_title(f"{factor}: the condition's representation")
    for row, label in ((0, "held-out score"), (1, "held-out score")):
        axes[row][0].set_ylabel(label + " (R$^2$ clipped at -0.5)")
    fig.tight_layout()
    return fig


INFORMATION_STYLES = {
    "exact": dict(color="black", ls="--", label="exact (train rows)"),
    "mmse_difference": dict(color="tab:green", lw=2, label="learned: score difference (MMSE form)"),
    "orthogonal": dict(color="tab:blue", lw=0.8, ls=":",
                       label="diagnostic: orthogonal form (MINDE; adds both passes' errors)"),
    "classifier_bound": dict(color="tab:orange", label="classifier bound H - CE"),
    "held_out_exact": dict(color="grey", ls=":", label="exact (held-out rows)"),
}


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


def mutual_information(info: pd.DataFrame, bound: pd.DataFrame | None = None) -> plt.Figure:
    """I(factor; X_t) against t (top) and against log-SNR (bottom): both forms of the learned
    score-difference estimate and the classifier bound, each with a band of two standard
    errors, beside the exact curve of the train rows and H(factor)."""
    curves = information_curves(info, bound)
    entropy = info[info["distribution"] == "train"].groupby("factor")["factor_entropy"].first()
    factors = sorted(entropy.index)
    fig, axes = plt.subplots(2, len(factors), figsize=(4 * len(factors), 7), squeeze=False)
    for column, factor in enumerate(factors):
        for name, curve in curves.items():
            curve = curve[curve["factor"] == factor].sort_values("t")
            style = INFORMATION_STYLES[name]
            for ax, x in ((axes[0][column], curve["t"]), (axes[1][column], curve["log_snr"])):
                ax.plot(x, curve["mean"], **style)
                ax.fill_between(x, curve["mean"] - 2 * curve["stderr"], curve["mean"] + 2 * curve["stderr"],
                                color=style["color"], alpha=0.15, lw=0)
        top = 1.3 * entropy[factor]
        learned = curves["mmse_difference"]
        peak = learned.loc[learned["factor"] == factor, "mean"].max()
        for ax in axes[:, column]:
            ax.axhline(entropy[factor], color="grey", lw=0.8, ls="-.", label=f"H({factor})")
            ax.set_ylim(-0.25 * entropy[factor], top)
            if peak > top:  # the axis stops at 1.3 H: say how far the learned curve goes
                ax.text(0.02, 0.97, f"learned curve peaks at {peak:.2f} nats", transform=ax.transAxes,
                        va="top", fontsize=7, color=INFORMATION_STYLES["mmse_difference"]["color"])
        axes[0][column].set(title=f"I({factor}; X_t)", xscale="log", xlabel="t (generation runs left to right)")
        axes[0][column].invert_xaxis()
        axes[1][column].set(xlabel="log SNR = log(alpha_t^2 / sigma_t^2)")
    for row in axes:
        row[0].set_ylabel("nats")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def show_image(ax, image: np.ndarray) -> None:
    """Draw a stored (C, H, W) image (float32 in [-1, 1] or uint8), grey or RGB."""
    image = model_range(image)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=-1, vmax=1)
    else:
        ax.imshow(np.clip((np.moveaxis(image, 0, -1) + 1) / 2, 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])


def sample_grid(images: np.ndarray, requested: pd.DataFrame, columns: int = 8, limit: int = 48) -> plt.Figure:
    """Generated images, titled with the condition each was asked for; for (x, y) data a
    red cross marks the requested position."""
    chosen = np.unique(np.linspace(0, len(images) - 1, min(limit, len(images))).round().astype(int))
    rows = int(np.ceil(len(chosen) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    positional = {"x", "y"} <= set(requested.columns)
    for ax, index in zip(axes.ravel(), chosen):
        show_image(ax, images[index])
        condition = requested.iloc[index]
        if positional:
            ax.plot(condition["x"], condition["y"], "r+", ms=8, mew=1.2)
        ax.set_title(",".join(f"{v:g}" for v in condition.to_numpy()), fontsize=6)
    legend = "red + = requested (x, y)" if positional else f"title = requested {', '.join(requested.columns)}"
    fig.suptitle(f"generated samples; {legend}", fontsize=9)
    fig.tight_layout()
    return fig


def contact_sheet(images: np.ndarray, title: str, columns: int = 16, limit: int = 128) -> plt.Figure:
    """Up to ``limit`` images, evenly spaced through the data set."""
    chosen = np.unique(np.linspace(0, len(images) - 1, min(limit, len(images))).round().astype(int))
    rows = int(np.ceil(len(chosen) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(0.8 * columns, 0.8 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, index in zip(axes.ravel(), chosen):
        show_image(ax, images[index])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def traversals(images: np.ndarray, rows_per_factor: dict[str, list[tuple[float, int]]]) -> plt.Figure:
    """One row per factor: the images along that factor's values, the others held fixed."""
    width = max(len(row) for row in rows_per_factor.values())
    fig, axes = plt.subplots(len(rows_per_factor), width, figsize=(0.9 * width + 1.2, 1.0 * len(rows_per_factor)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for axes_row, (name, row) in zip(axes, rows_per_factor.items()):
        for ax, (value, index) in zip(axes_row, row):
            show_image(ax, images[index])
            ax.set_title(f"{value:g}", fontsize=6)
        axes_row[0].text(-0.15, 0.5, name, transform=axes_row[0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle("factor traversals (one factor varies per row)", fontsize=9)
    fig.tight_layout()
    return fig


def training_loss(loss: pd.DataFrame, window: int = 50) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(loss["step"], loss["loss"], color="tab:blue", alpha=0.3, lw=0.8, label="per step")
    smooth = loss["loss"].rolling(window, min_periods=1).mean()
    ax.plot(loss["step"], smooth, color="tab:blue", label=f"mean of {window}")
    ax.set(xlabel="step", ylabel="epsilon-matching loss", yscale="log", title="training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def generation_over_training(accuracy: pd.DataFrame, representation: pd.DataFrame) -> plt.Figure:
    """Bumps over training: accuracy per axis (x and y on one panel: the imbalance study
    asks whether they are learned together), inside and outside the held-out region, the
    multi-bump fraction, and the representation's order per axis, with the phase."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.8))
    for (region, axis), curve in accuracy.groupby(["region", "axis"]):
        curve = curve.sort_values("training_step")
        style = {"x": "-", "y": "--", "both": ":"}[axis]
        left.plot(curve["training_step"], curve["accuracy"], ls=style, marker="o", ms=3, label=f"{axis}, {region}")
    overall = accuracy[(accuracy["region"] == "all") & (accuracy["axis"] == "both")].sort_values("training_step")
    middle.plot(overall["training_step"], overall["multi_bump_fraction"], marker="o", ms=3, label="several bumps")
    middle.plot(overall["training_step"], overall["no_bump_fraction"], marker="o", ms=3, label="no bump")
    order = representation.sort_values("training_step")
    for column, label in (("r2_pca_x", "R$^2$ x (PCA)"), ("r2_pca_y", "R$^2$ y (PCA)"), ("r2_isomap", "R$^2$ (Isomap)"),
                          ("trustworthiness", "trustworthiness")):
        right.plot(order["training_step"], order[column], marker="o", ms=3, label=label)
    for step, phase in zip(order["training_step"], order["phase"]):
        right.annotate(phase, (step, 1.02), ha="center", fontsize=8, annotation_clip=False)
    for ax, title in ((left, "accurate samples"), (middle, "failure modes"), (right, "order of the representation")):
        ax.set(xscale="log", xlabel="training step", title=title, ylim=(-0.02, 1.05))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def proxy_curves(curves: pd.DataFrame) -> plt.Figure:
    """Every proxy of "how decided is the factor" against t (top) and log-SNR (bottom), one
    column per factor, each rescaled from its value at pure noise (0) to its final value (1):
    the curves the order table reads its decision times from (0.5 and 0.9 marked)."""
    factors = sorted(curves["factor"].unique())
    fig, axes = plt.subplots(2, len(factors), figsize=(3.6 * len(factors), 6.6), sharey=True, squeeze=False)
    for column, factor in enumerate(factors):
        for proxy, curve in curves[curves["factor"] == factor].groupby("proxy"):
            curve = curve.sort_values("t", ascending=False)  # generation order
            scaled = fraction_covered(curve["value"].to_numpy())
            style = dict(color="black", lw=2, ls="--") if proxy == "mi_exact" else {}
            axes[0][column].plot(curve["t"], scaled, label=proxy, **style)
            axes[1][column].plot(curve["log_snr"], scaled, label=proxy, **style)
        for ax in axes[:, column]:
            for level in (0.5, 0.9):
                ax.axhline(level, color="grey", lw=0.6, ls=":")
            ax.set_ylim(-0.3, 1.3)
        axes[0][column].set(title=factor, xscale="log", xlabel="t (generation runs left to right)")
        axes[0][column].invert_xaxis()
        axes[1][column].set(xlabel="log SNR")
    axes[0][0].set_ylabel("fraction of the way from noise to final")
    axes[1][0].set_ylabel("fraction of the way from noise to final")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    return fig
