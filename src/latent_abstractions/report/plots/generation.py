"""Bumps over training: accuracy and phases, and pictures of the representation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...analysis.representation import ORDERED, TWO_D
from ..figure_style import captioned  # also sets the backend and the style
from ..manifold_pictures import pictured


@captioned(
    "Bumps over training: the fraction of accurate samples per axis, inside and outside the held-out "
    "region, and the failure modes, with the generation behaviour of each checkpoint above (A several "
    "bumps, B one misplaced bump, C accurate); the geometry of the condition's representation at every "
    "block: its order (leave-one-out kNN R^2 of the requested (x, y) from the whole activation maps; "
    f"dashed: the {ORDERED:g} threshold) and its Levina-Bickel intrinsic dimension (dashed: the 2-D threshold), "
    "the phase tap thick, its two controls as marks in the tap's colour at the right (x: the untrained network, +: the "
    "final representation with its rows permuted); and the phase tap's order per axis. The representation "
    "phase from geometry alone (A not 2-D, B 2-D disordered, C 2-D ordered) is written above the "
    "geometry panels."
)
def generation_over_training(accuracy: pd.DataFrame, representation: pd.DataFrame) -> plt.Figure:
    """Bumps over training: accuracy and failure modes with the generation behaviour above,
    order and intrinsic dimension per tap with the controls, and the phase tap's order per
    axis, with the representation phase above."""
    fig, axes = plt.subplots(1, 5, figsize=(21, 4.4))
    for (region, axis), curve in accuracy.groupby(["region", "axis"]):
        curve = curve.sort_values("training_step")
        style = {"x": "-", "y": "--", "both": ":"}[axis]
        axes[0].plot(curve["training_step"], curve["accuracy"], ls=style, marker="o", ms=3, label=f"{axis}, {region}")
    overall = accuracy[(accuracy["region"] == "all") & (accuracy["axis"] == "both")].sort_values("training_step")
    axes[1].plot(overall["training_step"], overall["multi_bump_fraction"], marker="o", ms=3, label="several bumps")
    axes[1].plot(overall["training_step"], overall["no_bump_fraction"], marker="o", ms=3, label="no bump")
    checkpoints = representation[representation["reference"] == "checkpoint"]
    controls = representation[representation["reference"] != "checkpoint"]
    last_step = checkpoints["training_step"].max()
    for tap, curve in checkpoints.groupby("tap"):
        curve = curve.sort_values("training_step")
        thick = bool(curve["phase_tap"].iloc[0])
        for ax, column in ((axes[2], "knn_r2"), (axes[3], "intrinsic_dimension")):
            line = ax.plot(
                curve["training_step"],
                curve[column],
                marker="o",
                ms=3,
                lw=2.5 if thick else 1,
                label=f"{tap}{' (phase tap)' if thick else ''}",
            )[0]
            for _, control in controls[controls["tap"] == tap].iterrows():
                ax.plot(
                    last_step * 1.5,
                    control[column],
                    ls="",
                    color=line.get_color(),
                    marker="x" if control["reference"] == "untrained" else "+",
                    ms=7,
                )
    chosen = checkpoints[checkpoints["phase_tap"]].sort_values("training_step")
    for column, label in (
        ("knn_r2_x", "kNN R$^2$ x"),
        ("knn_r2_y", "kNN R$^2$ y"),
        ("trustworthiness", "trustworthiness"),
        ("continuity", "continuity"),
        ("r2_pca", "PCA-3 linear R$^2$ (diagnostic)"),
    ):
        axes[4].plot(
            chosen["training_step"],
            chosen[column],
            marker="o",
            ms=3,
            label=label,
            ls=":" if column == "r2_pca" else "-",
        )
    axes[2].axhline(ORDERED, color="grey", lw=0.6, ls="--")
    axes[4].axhline(ORDERED, color="grey", lw=0.6, ls="--")
    axes[3].axhline(TWO_D, color="grey", lw=0.6, ls="--")
    dimensions = checkpoints["intrinsic_dimension"].to_numpy(dtype=float)
    if np.isnan(dimensions).all():  # too few conditions to measure: an empty panel, said so
        axes[3].set_ylim(0, 2 * TWO_D)
        for ax in axes[2:]:
            ax.text(0.5, 0.5, "not measured: too few conditions", transform=ax.transAxes, ha="center", fontsize=8)
    _label_checkpoints(axes[:2], chosen["training_step"], chosen["generation_behaviour"])
    _label_checkpoints(axes[2:], chosen["training_step"], chosen["phase"])
    tap = chosen["tap"].iloc[0]
    titles = (
        "accurate samples",
        "failure modes",
        "order (kNN R$^2$ of x, y) per tap",
        "intrinsic dimension per tap",
        f"order at {tap}, per axis",
    )
    first_step, last_step = accuracy["training_step"].min(), accuracy["training_step"].max()
    for ax, title in zip(axes, titles):
        # set, not found: a panel of curves that are all NaN has no limits of its own
        ax.set(xscale="log", xlabel="training step", xlim=(first_step / 1.3, last_step * 2))
        if ax is not axes[3]:  # the permuted control's order reads below 0
            ax.set_ylim(-0.3 if ax is axes[2] else -0.02, 1.08)
        ax.set_title(title, pad=14)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def _label_checkpoints(axes, steps, labels) -> None:
    """A letter just above the top of each of ``axes`` at each checkpoint."""
    for ax in axes:
        for step, label in zip(steps, labels):
            ax.annotate(label, (step, 1.01), xycoords=ax.get_xaxis_transform(), ha="center", fontsize=7)


@captioned(
    "The phase tap's representation of the requested (x, y) in 2-D, by PCA and by a seeded UMAP, at "
    "checkpoints through training; dots coloured by x, lines joining conditions of equal y. An "
    "ordered manifold shows as a regular mesh. Pictures for the eye: the phase comes from the "
    "intrinsic dimension and the kNN order measure."
)
def representation_pictures(embedding: pd.DataFrame) -> plt.Figure:
    """The phase tap's manifold in 2-D (PCA top, UMAP bottom) at the pictured checkpoints
    (manifold_pictures.pictured): each requested (x, y) a dot coloured by x, joined to its
    lattice neighbours along x (thin) so that order shows as a mesh. A lattice with too few
    conditions to measure (a 1-D control of 6 values) has no pictures: one panel says so."""
    if embedding.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "too few conditions to picture the representation", ha="center", va="center")
        return fig
    chosen = pictured(sorted(embedding["training_step"].unique()))
    methods = ("pca", "umap")
    fig, axes = plt.subplots(len(methods), len(chosen), figsize=(2.5 * len(chosen) + 1.5, 5.6), squeeze=False)
    for row, method in enumerate(methods):
        for column, step in enumerate(chosen):
            ax = axes[row][column]
            points = embedding[(embedding["method"] == method) & (embedding["training_step"] == step)]
            for _, line in points.sort_values("x").groupby("y"):
                ax.plot(line["c1"], line["c2"], color="grey", lw=0.4)
            dots = ax.scatter(points["c1"], points["c2"], c=points["x"], s=10, cmap="viridis")
            ax.set(xticks=[], yticks=[], title=f"step {step}: {method.upper()}")
    fig.colorbar(dots, ax=axes, label="requested x (lines join equal y)", shrink=0.8)
    fig.suptitle(
        f"the condition's representation at {embedding['tap'].iloc[0]} (pictures only; the phase "
        "reads the intrinsic dimension and the kNN order)",
        fontsize=9,
    )
    return fig
