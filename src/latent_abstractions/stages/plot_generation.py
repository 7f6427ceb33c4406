"""Pipeline step: bumps over training (accuracy and phases) and pictures of the representation."""

from __future__ import annotations

from pathlib import Path

from ..report.plots import generation
from .figures import Drawn, run_group, tables_figure


def drawn(sources: list[Path]) -> dict[str, Drawn]:
    accuracy, representation, embedding = sources
    return {
        **tables_figure("generation", [accuracy, representation], generation.generation_over_training),
        **tables_figure("representation", [embedding], generation.representation_pictures),
    }


if __name__ == "__main__":
    run_group("plot_generation", drawn)
