"""Pipeline step: Every proxy of the decision order along generation."""

from __future__ import annotations

from pathlib import Path

from ..report.plots import proxies
from .figures import Drawn, run_group, tables_figure


def drawn(sources: list[Path]) -> dict[str, Drawn]:
    return tables_figure("proxies", sources, proxies.proxy_curves)


if __name__ == "__main__":
    run_group("plot_proxies", drawn)
