"""Pipeline step: The information figure: I(factor; X_t), exact, learned and bounded."""

from __future__ import annotations

from pathlib import Path

from ..report.plots import information
from .figures import Drawn, run_group, tables_figure


def drawn(sources: list[Path]) -> dict[str, Drawn]:
    return tables_figure("information", sources, information.mutual_information)


if __name__ == "__main__":
    run_group("plot_information", drawn)
