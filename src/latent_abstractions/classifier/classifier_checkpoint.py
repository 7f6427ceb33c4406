"""The noise classifier's checkpoints: its weights as byte-stable safetensors, with its
architecture and provenance as JSON in the header; loading rebuilds the network from the
header and refuses (one-line ``ClassifierError``) a file that is not a classifier's, or
one made for another data set or SDE."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..core import safetensors_file
from ..diffusion.sde import SDE
from .classifier import (
    ARCHITECTURE_KEYS,
    ARCHITECTURE_KIND,
    ClassifierError,
    NoiseClassifier,
    build_model,
    check_matches,
    sde_params,
)

if TYPE_CHECKING:
    from ..datasets.base import Dataset


def save(model: NoiseClassifier, path: Path | str, provenance: dict) -> None:
    """Weights as byte-stable safetensors, architecture and provenance as JSON in the header."""
    safetensors_file.write_checkpoint(model.state_dict(), model.architecture, provenance, path)


def read_metadata(path: Path | str) -> dict:
    decoded = safetensors_file.read_checkpoint_header(path, ClassifierError, "classifier checkpoint")
    architecture = decoded["architecture"]
    if not isinstance(architecture, dict) or architecture.get("kind") != ARCHITECTURE_KIND:
        raise ClassifierError(f"{path}: not a {ARCHITECTURE_KIND} checkpoint")
    safetensors_file.check_architecture_keys(path, architecture, ARCHITECTURE_KEYS, ClassifierError, "train it again")
    return decoded


def load(
    path: Path | str, dataset: Dataset | None = None, sde: SDE | None = None, device: torch.device | str | None = None
) -> tuple[NoiseClassifier, dict]:
    """Rebuild the classifier from the header and load its weights strictly (eval mode, on
    ``device``, default CPU). With ``dataset``, refuse a classifier of another factor table
    or image shape; with ``sde``, one trained on another SDE. Returns (model, header)."""
    metadata = read_metadata(path)
    architecture = metadata["architecture"]
    if dataset is not None:
        check_matches(architecture, dataset)
    if sde is not None and sde_params(sde) != architecture["sde"]:
        raise ClassifierError(
            f"classifier checkpoint does not match its SDE: {architecture['sde']} vs {sde_params(sde)}"
        )
    model = build_model(architecture)
    safetensors_file.load_weights(model, path, ClassifierError)
    model.to(torch.device(device) if device is not None else torch.device("cpu")).eval()
    return model, metadata
