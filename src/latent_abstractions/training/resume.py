"""The rolling resume checkpoint: weights, EMA, optimizer state, step, loss history and
every random-number state, in one safetensors file (never a pickle), written atomically.

A run that finds a resume file with its own fingerprint (params and data hash) picks up
at the saved step and ends with the same weights, bit for bit on a CPU, as a run that
was never interrupted.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, safe_open

from ..core import safetensors_file
from ..core.read_audit import announce
from .train import Trainer


def save(trainer: Trainer, path: Path | str, fingerprint: str) -> None:
    tensors, metadata = trainer.state()
    safetensors_file.write(tensors, path, {"fingerprint": fingerprint, **metadata})


def fingerprint_of(path: Path | str) -> str | None:
    """The fingerprint a resume file was written for, or None if there is no readable one."""
    announce(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("fingerprint")
    except Exception:  # a missing, truncated or foreign file is simply not resumable
        return None


def load(trainer: Trainer, path: Path | str) -> None:
    """Restore ``trainer`` to the saved step."""
    announce(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    trainer.restore(load_file(str(path)), metadata)
