"""How a network represents its condition (Liang, Liu & Fiete, arXiv 2402.03305).

Given activations (n_conditions, d) of one tap over a grid of requested (x, y), this
measures how ordered the representation is:

- ``r2_pca`` / ``r2_isomap``: R^2 of a linear map from a 3-D embedding (PCA; Isomap,
  scikit-learn's non-linear one) back to (x, y), averaged over the two axes, and the
  same per axis (the imbalance study asks whether x and y are learned together);
- ``trustworthiness``: scikit-learn's neighbourhood preservation between the (x, y)
  grid and the 3-D PCA embedding (1 = neighbours on the grid stay neighbours);
- ``effective_dimension``: the PCA participation ratio (sum lambda)^2 / sum lambda^2
  of the activations; an ordered 2-D manifold has about 2.

Phase per checkpoint (documented in the README), from the generated samples and the
representation together:

- ``A``: most samples show several bumps (fraction of multi-bump samples > MULTI_BUMP);
- ``C``: generation accurate (>= ACCURATE) and the representation ordered (r2_pca >= ORDERED);
- ``B``: otherwise (mostly single bumps, misplaced or on a disordered manifold).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.manifold import Isomap, trustworthiness

EMBEDDING_DIMENSIONS = 3
NEIGHBOURS = 8
MULTI_BUMP = 0.5
ACCURATE = 0.9
ORDERED = 0.9


def participation_ratio(activations: np.ndarray) -> float:
    variances = np.clip(np.linalg.eigvalsh(np.cov(activations, rowvar=False)), 0.0, None)
    return float(variances.sum() ** 2 / max((variances ** 2).sum(), 1e-300))


def pca_embedding(activations: np.ndarray, dimensions: int = EMBEDDING_DIMENSIONS) -> np.ndarray:
    centred = activations - activations.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:dimensions].T


def linear_r2(embedding: np.ndarray, target: np.ndarray) -> np.ndarray:
    """In-sample R^2 per target column of a least-squares map from the embedding (a
    3-D map has too few parameters to overfit a grid of tens of points)."""
    fitted = LinearRegression().fit(embedding, target).predict(embedding)
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - ((target - fitted) ** 2).sum(axis=0) / np.where(total > 0, total, np.nan)


def measure(activations: np.ndarray, positions: np.ndarray) -> dict[str, float]:
    """Order of the representation; ``positions`` (n, 2) are the requested (x, y)."""
    activations = np.asarray(activations, dtype=np.float64)
    if len(activations) <= NEIGHBOURS + 1:
        raise ValueError(f"need more than {NEIGHBOURS + 1} conditions to measure a representation, "
                         f"got {len(activations)}")
    pca = pca_embedding(activations)
    isomap = Isomap(n_neighbors=NEIGHBOURS, n_components=EMBEDDING_DIMENSIONS).fit_transform(activations)
    r2_pca, r2_isomap = linear_r2(pca, positions), linear_r2(isomap, positions)
    return {"r2_pca": float(np.nanmean(r2_pca)), "r2_pca_x": float(r2_pca[0]), "r2_pca_y": float(r2_pca[-1]),
            "r2_isomap": float(np.nanmean(r2_isomap)),
            "trustworthiness": float(trustworthiness(positions, pca, n_neighbors=NEIGHBOURS)),
            "effective_dimension": participation_ratio(activations)}


def phase(multi_bump_fraction: float, accuracy: float, r2_pca: float) -> str:
    if multi_bump_fraction > MULTI_BUMP:
        return "A"
    if accuracy >= ACCURATE and r2_pca >= ORDERED:
        return "C"
    return "B"
