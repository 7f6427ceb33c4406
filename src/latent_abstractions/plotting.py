"""Figures, each a function from tidy tables to a matplotlib Figure (no file I/O here)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def probe_r2(probes: pd.DataFrame) -> plt.Figure:
    """Held-out R^2 of each feature's probe against t, one panel per factor."""
    factors = sorted(probes["factor"].unique())
    fig, axes = plt.subplots(1, len(factors), figsize=(5 * len(factors), 3.8), sharey=True, squeeze=False)
    for ax, factor in zip(axes[0], factors):
        for feature, rows in probes[probes["factor"] == factor].groupby("feature"):
            rows = rows.sort_values("t")
            ax.plot(rows["t"], rows["r2"].clip(lower=-0.5), marker="o", ms=3, label=feature)
        ax.set(title=f"linear probe for {factor}", xlabel="t (generation runs right to left)", ylim=(-0.55, 1.05))
        ax.invert_xaxis()
        ax.axhline(0, color="grey", lw=0.5)
    axes[0][0].set_ylabel("held-out R$^2$ (clipped at -0.5)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def mutual_information(info: pd.DataFrame) -> plt.Figure:
    """I(factor; X_t) against t (top) and against log-SNR (bottom), learned and exact."""
    factors = sorted(info["factor"].unique())
    fig, axes = plt.subplots(2, len(factors), figsize=(5 * len(factors), 7), sharey=True, squeeze=False)
    styles = {"exact": dict(color="black", ls="--"), "score_difference": dict(color="tab:blue", ls="-")}
    for column, factor in enumerate(factors):
        rows = info[info["factor"] == factor]
        for estimator, curve in rows.groupby("estimator"):
            curve = curve.sort_values("t")
            style = styles.get(estimator, {})
            axes[0][column].plot(curve["t"], curve["mi_nats"], label=estimator, **style)
            axes[1][column].plot(curve["log_snr"], curve["mi_nats"], label=estimator, **style)
        entropy = rows["factor_entropy_nats"].iloc[0]
        for ax in axes[:, column]:
            ax.axhline(entropy, color="grey", lw=0.8, ls=":", label=f"H({factor})")
        axes[0][column].set(title=f"I({factor}; X_t)", xscale="log", xlabel="t")
        axes[0][column].invert_xaxis()
        axes[1][column].set(xlabel="log SNR = log(alpha_t^2 / sigma_t^2)")
    for row in axes:
        row[0].set_ylabel("nats")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def sample_grid(images: np.ndarray, requested: pd.DataFrame, columns: int = 8) -> plt.Figure:
    """Generated images with a cross at the position each was asked for."""
    count = len(images)
    rows = int(np.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, (_, position) in zip(axes.ravel(), images, requested.iterrows()):
        ax.imshow(np.moveaxis(image, 0, -1).squeeze(-1) if image.shape[0] == 1 else np.moveaxis(image, 0, -1),
                  cmap="gray", vmin=-1, vmax=1)
        ax.plot(position["x"], position["y"], "r+", ms=8, mew=1.2)
        ax.set_title(f"({position['x']:g}, {position['y']:g})", fontsize=6)
    fig.suptitle("generated samples; red + = requested (x, y)", fontsize=9)
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
