"""The training loss figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..figure_style import captioned  # also sets the backend and the style


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
