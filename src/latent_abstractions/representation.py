"""How a network represents its condition (Liang, Liu & Fiete, arXiv 2402.03305).

The method in full: docs/science.md, "The representation measure and the phases".
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.manifold import Isomap, trustworthiness
from sklearn.neighbors import NearestNeighbors

from .errors import InputError

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
        raise InputError(
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
