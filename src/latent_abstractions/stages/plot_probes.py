"""Pipeline step: The probe figure: held-out probe scores along generation."""

from __future__ import annotations

from pathlib import Path

from ..report.plots import probes
from .figures import Drawn, run_group, tables_figure


def drawn(sources: list[Path]) -> dict[str, Drawn]:
    return tables_figure("probes", sources, probes.probe_scores)


if __name__ == "__main__":
    run_group("plot_probes", drawn)
