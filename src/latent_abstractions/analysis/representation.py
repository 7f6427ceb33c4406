"""How a network represents its condition (Liang, Liu & Fiete, arXiv 2402.03305).

Two sequences over training, each from its own evidence: the representation phase from
geometry alone (intrinsic dimension and order), and the generation behaviour from the
samples. The method in full: docs/science.md, "The representation measure and the phases".
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.manifold import Isomap, trustworthiness
from sklearn.neighbors import NearestNeighbors

from ..core.errors import InputError

NEIGHBOURS = 5
PCA_DIMENSIONS = 3
ISOMAP_DIMENSIONS = 2
ISOMAP_NEIGHBOURS = 10  # fewer leave the neighbour graph of a grid in pieces
MULTI_BUMP = 0.5
ACCURATE = 0.9
ORDERED = 0.8  # between the untrained control (about 0.5) and the trained plateau (0.88-0.97): docs/science.md
DIMENSION_NEIGHBOURS = 20  # Levina-Bickel's k: fewer read a lattice's first shells (a flat grid reads 3.1 at k = 5)
TWO_D = 5.0  # at most this reads as a 2-D manifold (docs/science.md: the controls and why not 2.5)


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


def intrinsic_dimension(activations: np.ndarray, neighbours: int = DIMENSION_NEIGHBOURS) -> float:
    """Levina-Bickel maximum-likelihood intrinsic dimension, pooled over points as MacKay
    and Ghahramani propose (the mean of the inverse local estimates, inverted).

    It reads the growth of neighbour distances, so a curved 2-D sheet reads 2; a global
    participation ratio reads it higher. Coincident points (distance 0) are dropped."""
    distances, _ = NearestNeighbors(n_neighbors=neighbours).fit(activations).kneighbors()
    usable = distances[:, 0] > 0
    if not usable.any():
        return float("nan")
    logs = np.log(distances[usable, -1:] / distances[usable, :-1])  # log(T_k / T_j), j < k
    return float(1.0 / logs.mean())


def isomap_r2(activations: np.ndarray, positions: np.ndarray) -> float:
    """R^2 of a linear map from a 2-D Isomap; NaN for a representation with too few
    distinct points to embed (a network that ignores its condition maps all to one)."""
    if len(np.unique(activations, axis=0)) <= ISOMAP_NEIGHBOURS + ISOMAP_DIMENSIONS:
        return float("nan")
    isomap = Isomap(n_neighbors=ISOMAP_NEIGHBOURS, n_components=ISOMAP_DIMENSIONS).fit_transform(activations)
    return float(np.nanmean(linear_r2(isomap, positions)))


MEASURES = (
    "knn_r2",
    "knn_r2_x",
    "knn_r2_y",
    "trustworthiness",
    "continuity",
    "r2_isomap",
    "r2_pca",
    "effective_dimension",
    "intrinsic_dimension",
)


def measurable(conditions: int) -> bool:
    """Whether this many conditions are enough for every measure (the dimension reads
    DIMENSION_NEIGHBOURS neighbours of each point)."""
    return conditions > max(2 * NEIGHBOURS, DIMENSION_NEIGHBOURS)


def unmeasured() -> dict[str, float]:
    """Every measure NaN: a lattice with too few conditions (a 1-D control of 6 values)."""
    return dict.fromkeys(MEASURES, float("nan"))


def measure(activations: np.ndarray, positions: np.ndarray) -> dict[str, float]:
    """Order of the representation; ``activations`` (n, ...) are flattened per condition,
    ``positions`` (n, 2) are the requested (x, y)."""
    activations = np.asarray(activations, dtype=np.float64).reshape(len(activations), -1)
    positions = np.asarray(positions, dtype=np.float64)
    if not measurable(len(activations)):
        needed = max(2 * NEIGHBOURS, DIMENSION_NEIGHBOURS)
        raise InputError(f"need more than {needed} conditions to measure a representation, got {len(activations)}")
    knn = knn_r2(activations, positions)
    pca = linear_r2(pca_embedding(activations), positions)
    return {
        "knn_r2": float(np.nanmean(knn)),
        "knn_r2_x": float(knn[0]),
        "knn_r2_y": float(knn[-1]),
        "trustworthiness": float(trustworthiness(positions, activations, n_neighbors=NEIGHBOURS)),
        "continuity": float(trustworthiness(activations, positions, n_neighbors=NEIGHBOURS)),
        "r2_isomap": isomap_r2(activations, positions),
        "r2_pca": float(np.nanmean(pca)),
        "effective_dimension": participation_ratio(activations),
        "intrinsic_dimension": intrinsic_dimension(activations),
    }


def is_ordered(knn_r2_value: float) -> bool:
    return knn_r2_value >= ORDERED


def is_two_dimensional(dimension: float) -> bool:
    return bool(np.isfinite(dimension)) and dimension <= TWO_D


def representation_phase(dimension: float, knn_r2_value: float) -> str:
    """From geometry alone: A no 2-D structure, B a 2-D manifold disordered in (x, y),
    C a 2-D manifold ordered in (x, y); "-" where nothing was measured."""
    if np.isnan(knn_r2_value):
        return "-"
    if not is_two_dimensional(dimension):
        return "A"
    return "C" if is_ordered(knn_r2_value) else "B"


def generation_behaviour(multi_bump_fraction: float, accuracy: float) -> str:
    """From the samples alone: A mostly several bumps, B one bump but misplaced, C accurate."""
    if multi_bump_fraction > MULTI_BUMP:
        return "A"
    return "C" if accuracy >= ACCURATE else "B"


def checkpoint_rows(table):
    """The phase tap's rows of a representation table (a DataFrame) at the training
    checkpoints, the controls left out, in training order."""
    return table[(table["reference"] == "checkpoint") & table["phase_tap"]].sort_values("training_step")


def phases_in_order(phases: list[str]) -> bool:
    """True when the phases over training never go back (A before B before C) and end in C."""
    ranks = ["ABC".index(p) for p in phases]
    return bool(ranks) and ranks == sorted(ranks) and phases[-1] == "C"
