"""Every proxy of the decision order against t and log-SNR."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ...analysis.order import fraction_covered
from ..figure_style import captioned  # also sets the backend and the style


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
