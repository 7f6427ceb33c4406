"""Entropies of integer labels, in nats: the plug-in estimate of a label column, and the
Miller-Madow one (bias-corrected) of a few branches' labels, as the forks need."""

from __future__ import annotations

import numpy as np


def plug_in_entropy(labels: np.ndarray, cardinality: int) -> float:
    """H(Y) of the empirical distribution of integer labels (N,)."""
    p = np.bincount(labels, minlength=cardinality) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def miller_madow_entropy(labels: np.ndarray, cardinality: int) -> np.ndarray:
    """Miller-Madow entropy of the labels along the last axis, per leading index: the
    plug-in estimate plus (observed classes - 1) / (2 n), its first-order bias."""
    branches = labels.shape[-1]
    counts = np.stack([(labels == v).sum(axis=-1) for v in range(cardinality)], axis=-1)
    p = counts / branches
    plug_in = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(axis=-1)
    observed = (counts > 0).sum(axis=-1)
    return plug_in + (observed - 1) / (2.0 * branches)
