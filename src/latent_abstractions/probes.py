"""Linear probes: ridge regression from a feature vector to a continuous factor,
scored by held-out R^2, and a one-hot ridge classifier for a categorical factor,
scored by held-out accuracy; the split is made by trajectory (no trajectory in both halves)."""

from __future__ import annotations

import numpy as np


def split_trajectories(n_trajectories: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train and test masks over trajectory ids; both halves non-empty."""
    if n_trajectories < 2:
        raise ValueError(f"need at least 2 trajectories to split, got {n_trajectories}")
    order = np.random.default_rng(seed).permutation(n_trajectories)
    n_test = min(max(1, round(test_fraction * n_trajectories)), n_trajectories - 1)
    test = np.zeros(n_trajectories, dtype=bool)
    test[order[:n_test]] = True
    return ~test, test


def fit_ridge(features: np.ndarray, target: np.ndarray, ridge: float) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Ridge on standardised features; returns (weights, intercept, feature mean, feature scale)."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = (features - mean) / scale
    intercept = float(target.mean())
    gram = z.T @ z + ridge * len(z) * np.eye(z.shape[1])
    weights = np.linalg.solve(gram, z.T @ (target - intercept))
    return weights, intercept, mean, scale


def predict(features: np.ndarray, fitted: tuple[np.ndarray, float, np.ndarray, np.ndarray]) -> np.ndarray:
    weights, intercept, mean, scale = fitted
    return ((features - mean) / scale) @ weights + intercept


def r_squared(target: np.ndarray, prediction: np.ndarray) -> float:
    """1 - SSE/SST on the held-out targets (can be negative for a probe worse than the mean)."""
    total = float(((target - target.mean()) ** 2).sum())
    if total == 0.0:
        return float("nan")
    return 1.0 - float(((target - prediction) ** 2).sum()) / total


def held_out_r2(features: np.ndarray, target: np.ndarray, train: np.ndarray, test: np.ndarray, ridge: float) -> float:
    fitted = fit_ridge(features[train].astype(np.float64), target[train].astype(np.float64), ridge)
    return r_squared(target[test].astype(np.float64), predict(features[test].astype(np.float64), fitted))


def held_out_accuracy(features: np.ndarray, classes: np.ndarray, train: np.ndarray, test: np.ndarray,
                      ridge: float) -> float:
    """A linear classifier: ridge regression onto one-hot classes, predicted class = argmax."""
    labels = classes.astype(np.int64)
    one_hot = np.eye(labels.max() + 1)[labels]
    fitted = [fit_ridge(features[train].astype(np.float64), one_hot[train, c], ridge) for c in range(one_hot.shape[1])]
    scores = np.stack([predict(features[test].astype(np.float64), f) for f in fitted], axis=1)
    return float((scores.argmax(axis=1) == labels[test]).mean())
