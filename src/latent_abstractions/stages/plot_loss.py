"""Pipeline step: The training loss."""

from __future__ import annotations

from pathlib import Path

from ..report.plots import loss
from .figures import Drawn, run_group, tables_figure


def drawn(sources: list[Path]) -> dict[str, Drawn]:
    return tables_figure("loss", sources, loss.training_loss)


if __name__ == "__main__":
    run_group("plot_loss", drawn)
