"""Train / validation / test splits of trajectories: by trajectory, never by row. Bad
sizes, fractions or trajectory ids raise a one-line InputError."""

from __future__ import annotations

import dataclasses

import numpy as np

from ...core.errors import InputError


def split_trajectories(n_trajectories: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train and test masks over trajectory ids; both halves non-empty."""
    if n_trajectories < 2:
        raise InputError(f"need at least 2 trajectories to split, got {n_trajectories}")
    order = np.random.default_rng(seed).permutation(n_trajectories)
    n_test = min(max(1, round(test_fraction * n_trajectories)), n_trajectories - 1)
    test = np.zeros(n_trajectories, dtype=bool)
    test[order[:n_test]] = True
    return ~test, test


@dataclasses.dataclass(frozen=True)
class TrajectorySplit:
    """Disjoint boolean masks over trajectory ids 0..n-1 (``train`` excludes ``validation``)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def rows(self, trajectory: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean row masks (train, validation, test) for rows with these trajectory ids."""
        ids = np.asarray(trajectory)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise InputError(f"trajectory ids must be a 1-D integer array, got {ids.dtype} of shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.train)):
            raise InputError(f"trajectory ids must lie in [0, {len(self.train)}), got [{ids.min()}, {ids.max()}]")
        return self.train[ids], self.validation[ids], self.test[ids]


def split_train_validation_test(
    n_trajectories: int, test_fraction: float, validation_fraction: float, seed: int
) -> TrajectorySplit:
    """Test trajectories as ``split_trajectories(n, test_fraction, seed)``; then a share
    ``validation_fraction`` of the remaining ones (at least one, and at least one left) for
    validation. Needs at least 3 trajectories."""
    if n_trajectories < 3:
        raise InputError(f"need at least 3 trajectories for a train/validation/test split, got {n_trajectories}")
    if not 0.0 < validation_fraction < 1.0:
        raise InputError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    rest, test = split_trajectories(n_trajectories, test_fraction, seed)
    if rest.sum() < 2:  # test_fraction left a single trajectory for train + validation
        test[np.flatnonzero(test)[-1]] = False
        rest = ~test
    rest_ids = np.flatnonzero(rest)
    order = np.random.default_rng([seed, 1]).permutation(rest_ids)
    n_val = min(max(1, round(validation_fraction * len(rest_ids))), len(rest_ids) - 1)
    validation = np.zeros(n_trajectories, dtype=bool)
    validation[order[:n_val]] = True
    return TrajectorySplit(train=rest & ~validation, validation=validation, test=test)
