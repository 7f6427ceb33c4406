"""Model weights as safetensors, with the architecture and provenance in the header.

A checkpoint is never unpickled: the header's JSON says how to rebuild the
network, and the tensors must then match it exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import safetensors_file
from .errors import InputError
from .factors import Factor
from .nets.unet import ScoreUNet


class CheckpointError(InputError):
    """A checkpoint is missing, corrupted or from another architecture."""


def build_model(architecture: dict) -> ScoreUNet:
    factors = [Factor.from_dict(f) for f in architecture["factors"]]
    return ScoreUNet(
        image_channels=architecture["image_channels"],
        factors=factors,
        base_channels=architecture["base_channels"],
        channel_mults=list(architecture["channel_mults"]),
        groups=architecture["groups"],
        cond_frequencies=architecture["cond_frequencies"],
        blocks_per_level=architecture["blocks_per_level"],
        attention_levels=tuple(architecture["attention_levels"]),
        heads=architecture["heads"],
    )


def architecture_from_params(model_params: dict, factors: list[Factor], image_shape: tuple[int, int, int]) -> dict:
    """Everything needed to rebuild the network; ``image_shape`` is (C, H, W)."""
    return {
        "image_channels": image_shape[0],
        "image_size": list(image_shape[1:]),
        "factors": [f.to_dict() for f in factors],
        "base_channels": model_params["base_channels"],
        "channel_mults": list(model_params["channel_mults"]),
        "groups": model_params["groups"],
        "cond_frequencies": model_params["cond_frequencies"],
        "blocks_per_level": model_params["blocks_per_level"],
        "attention_levels": list(model_params["attention_levels"]),
        "heads": model_params["heads"],
    }


def save(model: ScoreUNet, architecture: dict, path: Path | str, provenance: dict) -> None:
    save_state(model.state_dict(), architecture, path, provenance)


def save_state(state: dict[str, torch.Tensor], architecture: dict, path: Path | str, provenance: dict) -> None:
    """Weights (e.g. an EMA's) as safetensors, with the architecture and provenance in the header."""
    safetensors_file.write_checkpoint(state, architecture, provenance, path)


def read_metadata(path: Path | str) -> dict:
    return safetensors_file.read_checkpoint_header(path, CheckpointError)


def load(path: Path | str, expected_architecture: dict | None = None) -> tuple[ScoreUNet, dict]:
    """Rebuild the network from the header and load its weights (strictly)."""
    metadata = read_metadata(path)
    architecture = metadata["architecture"]
    if expected_architecture is not None and architecture != expected_architecture:
        differing = sorted(k for k in expected_architecture if architecture.get(k) != expected_architecture[k])
        raise CheckpointError(f"{path}: architecture differs from params in {', '.join(differing)}")
    model = build_model(architecture)
    safetensors_file.load_weights(model, path, CheckpointError)
    model.eval()
    return model, metadata


def load_for_params(path: Path | str, model_params: dict) -> tuple[ScoreUNet, dict]:
    """Load a checkpoint, refusing one whose network is not the one ``model_params`` describe
    (the data's factors and image shape are taken from its header)."""
    header = read_metadata(path)["architecture"]
    factors = [Factor.from_dict(f) for f in header["factors"]]
    image_shape = (header["image_channels"], *header["image_size"])
    return load(path, expected_architecture=architecture_from_params(model_params, factors, image_shape))
