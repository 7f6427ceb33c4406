"""How a network represents its condition (Liang, Liu & Fiete, arXiv 2402.03305).

Given one tap's whole activation maps, flattened to (n_conditions, d), over a grid of
requested (x, y), this measures how *ordered* the representation is, without assuming
that the manifold is flat:

- ``knn_r2`` (and ``knn_r2_x``, ``knn_r2_y``): the leave-one-out R^2 of a k-nearest-
  neighbour regression of (x, y) from the activations (each condition's position
  predicted by the mean position of its K nearest other conditions in activation
  space). A curved but ordered 2-D manifold reads near 1; a disordered one, or noise,
  near or below 0. This is the order measure the phase label uses.
- ``trustworthiness`` / ``continuity``: neighbourhood preservation between the grid and
  the activations (scikit-learn's trustworthiness, both ways round): neighbours in the
  activations are neighbours on the grid, and the reverse.
- ``r2_isomap`` / ``r2_pca``: R^2 of a linear map from a 2-D Isomap / 3-D PCA embedding
  to (x, y): diagnostics only (a curved ordered manifold fails the PCA test).
- ``effective_dimension``: the PCA participation ratio (sum lambda)^2 / sum lambda^2.

Phase per checkpoint (README, "Phases"), from the generated samples and the
representation at one tap (``PHASE_TAP``) together:

- ``A``: most samples show several bumps (multi-bump fraction > MULTI_BUMP);
- ``C``: generation accurate (>= ACCURATE) and the representation ordered (knn_r2 >= ORDERED);
- ``B``: otherwise (mostly single bumps, misplaced or on a disordered manifold).

Thresholds: ORDERED = 0.9 sits between what ordered embeddings read (a smooth non-linear
map of the grid into 64 dimensions: > 0.97; the grid itself: 0.99; trained 16x16 models:
0.93-0.98 from about a fifth of the way through training) and what disorder reads (the
same vectors with rows permuted, or noise: < 0.2), and leaves room for the error a
5-neighbour average makes at the grid's edges. ACCURATE = 0.9: nine samples in ten on the requested pixel.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.manifold import Isomap, trustworthiness
from sklearn.neighbors import NearestNeighbors

PHASE_TAP = "mid"  # the bottleneck: every condition passes through it, at the coarsest resolution
NEIGHBOURS = 5
PCA_DIMENSIONS = 3
ISOMAP_DIMENSIONS = 2
ISOMAP_NEIGHBOURS = 10  # fewer leave the neighbour graph of a grid in pieces
MULTI_BUMP = 0.5
ACCURATE = 0.9
ORDERED = 0.9


def participation_ratio(activations: np.ndarray) -> float:
    centred = activations - activations.mean(axis=0)
    variances = np.linalg.svd(centred, compute_uv=False) ** 2  # the covariance's eigenvalues, up to a factor
    return float(variances.sum() ** 2 / max((variances**2).sum(), 1e-300))


def pca_embedding(activations: np.ndarray, dimensions: int = PCA_DIMENSIONS) -> np.ndarray:
    centred = activations - activations.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:dimensions].T


def r2_per_column(target: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - ((target - predicted) ** 2).sum(axis=0) / np.where(total > 0, total, np.nan)


def linear_r2(embedding: np.ndarray, target: np.ndarray) -> np.ndarray:
    """In-sample R^2 per target column of a least-squares map from a low-dimensional embedding."""
    return r2_per_column(target, LinearRegression().fit(embedding, target).predict(embedding))


def knn_r2(activations: np.ndarray, positions: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Leave-one-out k-nearest-neighbour R^2 per column of ``positions``."""
    # kneighbors() without a query set leaves each point out of its own neighbours.
    _, others = NearestNeighbors(n_neighbors=neighbours).fit(activations).kneighbors()
    return r2_per_column(positions, positions[others].mean(axis=1))


def measure(activations: np.ndarray, positions: np.ndarray) -> dict[str, float]:
    """Order of the representation; ``activations`` (n, ...) are flattened per condition,
    ``positions`` (n, 2) are the requested (x, y)."""
    activations = np.asarray(activations, dtype=np.float64).reshape(len(activations), -1)
    positions = np.asarray(positions, dtype=np.float64)
    if len(activations) <= 2 * NEIGHBOURS:
        raise ValueError(
            f"need more than {2 * NEIGHBOURS} conditions to measure a representation, got {len(activations)}"
        )
    knn = knn_r2(activations, positions)
    isomap = Isomap(n_neighbors=ISOMAP_NEIGHBOURS, n_components=ISOMAP_DIMENSIONS).fit_transform(activations)
    pca = linear_r2(pca_embedding(activations), positions)
    return {
        "knn_r2": float(np.nanmean(knn)),
        "knn_r2_x": float(knn[0]),
        "knn_r2_y": float(knn[-1]),
        "trustworthiness": float(trustworthiness(positions, activations, n_neighbors=NEIGHBOURS)),
        "continuity": float(trustworthiness(activations, positions, n_neighbors=NEIGHBOURS)),
        "r2_isomap": float(np.nanmean(linear_r2(isomap, positions))),
        "r2_pca": float(np.nanmean(pca)),
        "effective_dimension": participation_ratio(activations),
    }


def is_ordered(knn_r2_value: float) -> bool:
    return knn_r2_value >= ORDERED


def phase(multi_bump_fraction: float, accuracy: float, knn_r2_value: float) -> str:
    if multi_bump_fraction > MULTI_BUMP:
        return "A"
    if accuracy >= ACCURATE and is_ordered(knn_r2_value):
        return "C"
    return "B"


def phases_in_order(phases: list[str]) -> bool:
    """True when the phases over training never go back (A before B before C) and end in C."""
    ranks = ["ABC".index(p) for p in phases]
    return bool(ranks) and ranks == sorted(ranks) and phases[-1] == "C"
