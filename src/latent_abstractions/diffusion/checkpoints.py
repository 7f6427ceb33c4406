"""Model weights as safetensors, with the architecture and provenance in the header.

A checkpoint is never unpickled: the header's JSON says how to rebuild the
network, and the tensors must then match it exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core import safetensors_file
from ..core.artifacts import input_sha256, params_sha256
from ..core.errors import InputError
from ..core.factors import Factor
from . import diffusers_folder
from .nets.diffusers_unet import DiffusersScoreNet, build_unet, unet_config
from .nets.levels import halving_problem
from .nets.unet import ScoreUNet

TRAINING_SECTIONS = ("sde", "model", "train")  # what train_score_model records in a checkpoint
IMPORT_SECTIONS = ("sde", "model")  # what import_model records (an outside network has no training params)


def identity_sections(params: dict) -> tuple[str, ...]:
    """The params sections a checkpoint of this experiment is made from."""
    return IMPORT_SECTIONS if params.get("model", {}).get("kind") == "diffusers" else TRAINING_SECTIONS


class CheckpointError(InputError):
    """A checkpoint is missing, corrupted or from another architecture."""


def build_model(architecture: dict) -> ScoreUNet | DiffusersScoreNet:
    factors = [Factor.from_dict(f) for f in architecture["factors"]]
    if architecture.get("network") == "diffusers_unet2d":
        unet = build_unet(architecture["unet"])
        return DiffusersScoreNet(unet, factors, architecture["conditioning"], architecture["cond_frequencies"])
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
    if model_params.get("kind") == "diffusers":  # an outside network: its folder says
        return diffusers_folder.architecture(Path(model_params["path"]), factors, image_shape)
    check_halvings(image_shape, len(model_params["channel_mults"]))
    if model_params.get("architecture") == "diffusers_unet2d":
        return {
            "network": "diffusers_unet2d",
            "image_channels": image_shape[0],
            "image_size": list(image_shape[1:]),
            "factors": [f.to_dict() for f in factors],
            "conditioning": "embedding",
            "cond_frequencies": model_params["cond_frequencies"],
            "unet": diffusers_folder.canonical_config(unet_config(model_params, image_shape, "embedding")),
        }
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


def check_halvings(image_shape: tuple[int, int, int], levels: int) -> None:
    """The data on disk against the rule the params check applies to the params' sizes: a
    backstop for data whose size no params key states, refused before training."""
    height, width = image_shape[1:]
    problem = halving_problem(height, width, levels)
    if problem:
        raise InputError(f"images are {height}x{width}: {problem} (model.channel_mults)")


def save(model: ScoreUNet, architecture: dict, path: Path | str, provenance: dict) -> None:
    save_state(model.state_dict(), architecture, path, provenance)


def save_state(state: dict[str, torch.Tensor], architecture: dict, path: Path | str, provenance: dict) -> None:
    """Weights (e.g. an EMA's) as safetensors, with the architecture and provenance in the header."""
    safetensors_file.write_checkpoint(state, architecture, provenance, path)


# The header's architecture keys each network is rebuilt from (build_model); a new network
# adds its entry here (docs/extending.md).
ARCHITECTURE_KEYS = {
    "score_unet": (
        "image_channels",
        "image_size",
        "factors",
        "base_channels",
        "channel_mults",
        "groups",
        "cond_frequencies",
        "blocks_per_level",
        "attention_levels",
        "heads",
    ),
    "diffusers_unet2d": ("image_channels", "image_size", "factors", "conditioning", "cond_frequencies", "unet"),
}


def read_metadata(path: Path | str) -> dict:
    """The checkpoint's header, refused in one line if its architecture lacks a key."""
    metadata = safetensors_file.read_checkpoint_header(path, CheckpointError)
    architecture = metadata["architecture"]
    if not isinstance(architecture, dict):
        raise CheckpointError(f"{path}: the header's architecture is not a mapping; train or import it again")
    network = architecture.get("network", "score_unet")
    if network not in ARCHITECTURE_KEYS:
        raise CheckpointError(
            f"{path}: the header's architecture names network {network!r}; this project builds "
            f"{', '.join(ARCHITECTURE_KEYS)}"
        )
    safetensors_file.check_architecture_keys(
        path, architecture, ARCHITECTURE_KEYS[network], CheckpointError, "train or import it again"
    )
    return metadata


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


def load_for_params(path: Path | str, params: dict, experiment: str) -> tuple[ScoreUNet, dict]:
    """Load a checkpoint, refusing one whose network is not the one the experiment's params
    describe (the data's factors and image shape are taken from its header), or that was
    trained for another experiment, with other params or on another version of the data."""
    metadata = read_metadata(path)
    check_identity(path, metadata.get("provenance", {}), params, experiment)
    header = metadata["architecture"]
    factors = [Factor.from_dict(f) for f in header["factors"]]
    image_shape = (header["image_channels"], *header["image_size"])
    return load(path, expected_architecture=architecture_from_params(params["model"], factors, image_shape))


def check_identity(path: Path | str, made_by: dict, params: dict, experiment: str) -> None:
    """The checkpoint's provenance against this experiment: its name, its training params
    and the data set files as they are now."""
    if made_by.get("experiment") != experiment:
        raise CheckpointError(f"{path}: trained for experiment {made_by.get('experiment')!r}, not {experiment!r}")
    sections = {key: params[key] for key in identity_sections(params) if key in params}
    made, again = (
        ("imported", "import it again") if sections.keys() == set(IMPORT_SECTIONS) else ("trained", "train it again")
    )
    if made_by.get("params_sha256") != params_sha256(sections):
        differing = [key for key in sections if made_by.get("params", {}).get(key) != sections[key]]
        raise CheckpointError(
            f"{path}: {made} with other {', '.join(differing) or 'training'} params than params.yaml "
            f"gives {experiment}; {again}"
        )
    for source, digest in made_by.get("inputs", {}).items():
        if Path(source).is_file() and input_sha256(source) != digest:
            raise CheckpointError(f"{path}: trained on another version of {source}; train it again")
