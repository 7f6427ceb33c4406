"""Linear probes from features recorded along the trajectories to the generating factors,
many problems fitted at once (api.py holds the method; the other modules its parts)."""

from .api import CATEGORICAL_METRICS, CONTINUOUS_METRICS, DEFAULT_PENALTIES, fit_probes, probe_frame
from .splits import TrajectorySplit, split_train_validation_test, split_trajectories

__all__ = [
    "CATEGORICAL_METRICS",
    "CONTINUOUS_METRICS",
    "DEFAULT_PENALTIES",
    "TrajectorySplit",
    "fit_probes",
    "probe_frame",
    "split_train_validation_test",
    "split_trajectories",
]
