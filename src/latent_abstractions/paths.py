"""Where each experiment's artifacts live under data/ (mirrored by the Snakefile and dvc.yaml)."""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")


def dataset_dir(experiment: str) -> Path:
    return DATA / experiment / "dataset"


def model_dir(experiment: str) -> Path:
    return DATA / experiment / "model"


def weights(experiment: str) -> Path:
    return model_dir(experiment) / "weights.safetensors"


def loss_table(experiment: str) -> Path:
    return model_dir(experiment) / "loss.parquet"


def trajectories(experiment: str) -> Path:
    return DATA / experiment / "trajectories.parquet"


def probes(experiment: str) -> Path:
    return DATA / experiment / "probes.parquet"


def information(experiment: str) -> Path:
    return DATA / experiment / "information.parquet"


def figures_dir(experiment: str) -> Path:
    return DATA / experiment / "figures"


def checkpoints_dir(experiment: str) -> Path:
    """EMA snapshots at log-spaced training steps, step_<n>.safetensors."""
    return model_dir(experiment) / "checkpoints"


def live_dir(experiment: str) -> Path:
    """dvclive metrics of training."""
    return model_dir(experiment) / "live"


def partial_dir(experiment: str) -> Path:
    """Training in progress (resume checkpoint, snapshots so far); not a pipeline output."""
    return model_dir(experiment) / ".partial"
