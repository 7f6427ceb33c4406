"""Pipeline step: the generated samples, one per requested condition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..report.plots import samples
from ..store import trajectories
from .figures import Drawn, run_group


def final_samples(store: trajectories.Store) -> tuple[np.ndarray, pd.DataFrame]:
    """The final image of the first trajectory at each requested condition."""
    images = store.final_images()
    requested = pd.DataFrame(store.requested_factors())
    first = ~requested.duplicated().to_numpy()
    return images[first], requested[first].reset_index(drop=True)


def drawn(sources: list[Path]) -> dict[str, Drawn]:
    store = trajectories.open_store(sources[0], "trajectories")
    return {"samples": Drawn(samples.sample_grid(*final_samples(store)), sources, samples.sample_grid)}


if __name__ == "__main__":
    run_group("plot_samples", drawn)
