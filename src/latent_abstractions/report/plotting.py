"""Figures, each a function from tidy tables to a matplotlib Figure (no file I/O here)."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..analysis.convergence import CONVERGING_NOTE, information_gaps, not_converged_note
from ..analysis.order import fraction_covered
from ..analysis.representation import ORDERED, TWO_D
from ..core.pixels import model_range
from .figure_style import captioned  # also sets the backend and the style
from .manifold_pictures import pictured

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


def legend_columns(panels: int) -> int:
    """Columns of a figure legend below ``panels`` panels side by side."""
    return min(6, panels + 1)


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


def show_image(ax, image: np.ndarray) -> None:
    """Draw a stored (C, H, W) image (float32 in [-1, 1] or uint8), grey or RGB."""
    image = model_range(image)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=-1, vmax=1)
    else:
        ax.imshow(np.clip((np.moveaxis(image, 0, -1) + 1) / 2, 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])


@captioned(
    "The final image of one trajectory per requested condition (title: the request). Compare each "
    "image with its request: wrong or several objects show a model that has not learned the "
    "condition."
)
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


@captioned(
    "A sample of the data set's images. Every image is a deterministic function of its factors, so "
    "the noised data distribution, hence every exact curve, is known."
)
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


@captioned(
    "One row per factor: that factor runs through its values while the others stay as close as the "
    "data set allows to the first image. It shows what each factor changes."
)
def traversals(images: np.ndarray, rows_per_factor: dict[str, list[tuple[float, int]]]) -> plt.Figure:
    """One row per factor: the images along that factor's values, the others held fixed."""
    width = max(len(row) for row in rows_per_factor.values())
    fig, axes = plt.subplots(
        len(rows_per_factor), width, figsize=(0.9 * width + 1.2, 1.0 * len(rows_per_factor)), squeeze=False
    )
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


@captioned(
    "The training loss (denoising error) per step and its running mean. A curve still falling at the "
    "end says the smoke model is short of converged; the analyses then describe an undertrained "
    "model."
)
def training_loss(loss: pd.DataFrame, window: int = 50) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(loss["step"], loss["loss"], color="tab:blue", alpha=0.3, lw=0.8, label="per step")
    smooth = loss["loss"].rolling(window, min_periods=1).mean()
    ax.plot(loss["step"], smooth, color="tab:blue", label=f"mean of {window}")
    ax.set(xlabel="step", ylabel="epsilon-matching loss", yscale="log", title="training loss")
    ax.legend()
    fig.tight_layout()
    return fig


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
    "Every proxy of how decided each factor is, against t and log-SNR, rescaled from its value at "
    "pure noise (0) to its final value (1); the exact mutual information is the thick dashed line. "
    "Where a curve crosses 0.5 and 0.9 gives the decision times of the order table below."
)
def proxy_curves(curves: pd.DataFrame) -> plt.Figure:
    """Every proxy of "how decided is the factor" against t (top) and log-SNR (bottom), one
    column per factor, each rescaled from its value at pure noise (0) to its final value (1):
    the curves the order table reads its decision times from (0.5 and 0.9 marked)."""
    factors = sorted(curves["factor"].unique())
    fig, axes = plt.subplots(
        2, len(factors), figsize=(3.6 * len(factors), 7.0), sharey=True, squeeze=False, layout="constrained"
    )
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
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(8, len(labels)), fontsize=8)
    return fig


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


# Each figure's caption by the name its PNG takes (data/<experiment>/figures/<name>.png):
# Snakemake's report (workflow/rules/common.smk) prints it under the figure.
FIGURE_CAPTIONS = {
    "dataset_contact_sheet": contact_sheet.caption,
    "dataset_traversals": traversals.caption,
    "probes": probe_scores.caption,
    "information": mutual_information.caption,
    "samples": sample_grid.caption,
    "loss": training_loss.caption,
    "generation": generation_over_training.caption,
    "representation": representation_pictures.caption,
    "proxies": proxy_curves.caption,
}
