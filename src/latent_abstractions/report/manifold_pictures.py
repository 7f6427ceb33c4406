"""2-D pictures of a representation's manifold, for the eye only (the phase label comes
from representation.py's order measure): PCA, and a seeded UMAP as Liang et al. drew
theirs (umap-learn)."""

from __future__ import annotations

import warnings

import numpy as np

from ..analysis.representation import pca_embedding

UMAP_NEIGHBOURS = 15
PICTURED_CHECKPOINTS = 8


def pictured(steps: list[int], columns: int = PICTURED_CHECKPOINTS) -> list[int]:
    """The checkpoints pictured: the first, the last and evenly between, at most ``columns``."""
    steps = sorted(steps)
    return [steps[i] for i in np.unique(np.linspace(0, len(steps) - 1, min(columns, len(steps))).round().astype(int))]


def umap_embedding(activations: np.ndarray, seed: int) -> np.ndarray:
    import umap  # imported here: numba compiles it on first use, a few seconds

    with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state": wanted
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(n_components=2, n_neighbors=UMAP_NEIGHBOURS, random_state=seed, n_jobs=1)
        return reducer.fit_transform(activations)


def pictures(activations: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """{method: (n, 2) coordinates} of the flattened activations (n, ...)."""
    flat = np.asarray(activations, dtype=np.float64).reshape(len(activations), -1)
    return {"pca": pca_embedding(flat, 2), "umap": umap_embedding(flat, seed)}
