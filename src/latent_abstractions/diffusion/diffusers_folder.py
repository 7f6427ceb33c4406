"""A diffusers ``save_pretrained`` folder of a UNet2DModel, read as the project's network
(``model.kind: diffusers``) and written from one the pipeline trained
(``latent-abstractions export-diffusers WEIGHTS FOLDER``).

The folder holds what ``UNet2DModel.save_pretrained`` writes (config.json and
diffusion_pytorch_model.safetensors) and, for a model conditioned through the project's
per-factor condition embedding, condition_embedding.safetensors (its weights; the
factors and frequencies in its header). Every fault is one line naming the folder.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..core.errors import InputError
from ..core.factors import Factor
from .nets.diffusers_unet import DiffusersScoreNet, build_unet

CONFIG = "config.json"
WEIGHTS = "diffusion_pytorch_model.safetensors"
EMBEDDING = "condition_embedding.safetensors"


class FolderError(InputError):
    """A diffusers folder that is missing, unreadable or does not fit the data set."""


DDPM_SDE = {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0}


def check_ddpm_sde(sde: dict) -> None:
    """A DDPM-trained network's timesteps mean the VP SDE with beta from 0.1 to 20."""
    differing = [f"{key} {sde.get(key)!r}" for key, value in DDPM_SDE.items() if sde.get(key) != value]
    if differing:
        raise InputError(
            f"sde: {', '.join(differing)}; a diffusers UNet2DModel's DDPM timesteps mean the VP SDE with "
            "beta_min 0.1 and beta_max 20 (DDPM's linear 1e-4 to 0.02 over 1,000 steps)"
        )


def weight_files(folder: Path) -> list[Path]:
    """The files that make the network (config, weights, condition embedding): what is hashed."""
    return [Path(folder) / name for name in (CONFIG, WEIGHTS, EMBEDDING) if (Path(folder) / name).is_file()]


def read_config(folder: Path) -> dict:
    """The UNet2DModel config of ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderError(f"model.path {folder}: no such folder (a UNet2DModel's save_pretrained folder)")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise FolderError(f"model.path {folder}: {CONFIG} unreadable ({type(exc).__name__}: {exc})") from None
    if config.get("_class_name") != "UNet2DModel":
        raise FolderError(f"model.path {folder}: {CONFIG} describes a {config.get('_class_name')!r}, not a UNet2DModel")
    if not (folder / WEIGHTS).is_file():
        raise FolderError(
            f"model.path {folder}: no {WEIGHTS} (save it with save_pretrained(..., safe_serialization=True))"
        )
    return config


def canonical_config(config: dict) -> dict:
    """Every init key of the UNet2DModel ``config`` builds, defaults included (JSON types),
    so that a config written by hand and one written by save_pretrained compare equal."""
    public = {key: value for key, value in config.items() if not key.startswith("_")}
    return json.loads(_canonical_json(json.dumps(public, sort_keys=True)))


@functools.lru_cache(maxsize=8)
def _canonical_json(config_json: str) -> str:
    """Built once per config: every checkpoint load asks again, and building a UNet is not free."""
    built = build_unet(json.loads(config_json)).config
    return json.dumps({key: value for key, value in built.items() if not key.startswith("_")})


def conditioning_of(folder: Path, config: dict) -> str:
    if (Path(folder) / EMBEDDING).is_file():
        return "embedding"
    return "class" if config.get("num_class_embeds") else "none"


def check_fits(folder: Path, config: dict, image_shape: tuple[int, int, int], factors: list[Factor]) -> None:
    """The folder's sample size, channels and classes against the data set's."""
    channels, height, width = image_shape
    size = config.get("sample_size")
    sizes = [size, size] if isinstance(size, int) else list(size or [])
    mismatches = []
    if sizes != [height, width]:
        mismatches.append(f"sample_size {size} but the data set's images are {height}x{width}")
    for key in ("in_channels", "out_channels"):
        if config.get(key) != channels:
            mismatches.append(f"{key} {config.get(key)} but the data set's images have {channels} channel(s)")
    if config.get("time_embedding_type", "positional") != "positional":
        mismatches.append(
            f"time_embedding_type {config.get('time_embedding_type')!r}; the pipeline gives DDPM timesteps, "
            "which a 'positional' embedding reads (an epsilon-predicting DDPM UNet)"
        )
    classes = config.get("num_class_embeds")
    grid = int(torch.tensor([f.cardinality for f in factors]).prod()) if factors else 0
    if classes and classes != grid + 1:
        mismatches.append(
            f"num_class_embeds {classes} but the pipeline needs one class per combination of the factors' values "
            f"and a last one for no condition: {grid + 1}"
        )
    if mismatches:
        raise FolderError(f"model.path {folder}: {'; '.join(mismatches)}")


def architecture(folder: Path, factors: list[Factor], image_shape: tuple[int, int, int]) -> dict:
    """The checkpoint header's architecture of the folder's network, for this data set."""
    config = read_config(folder)
    check_fits(folder, config, image_shape, factors)
    conditioning = conditioning_of(folder, config)
    if conditioning == "embedding":
        check_embedding(Path(folder), config, factors)
    return {
        "network": "diffusers_unet2d",
        "image_channels": image_shape[0],
        "image_size": list(image_shape[1:]),
        "factors": [f.to_dict() for f in factors],
        "conditioning": conditioning,
        "cond_frequencies": embedding_frequencies(folder) if conditioning == "embedding" else None,
        "unet": canonical_config(config),
    }


def check_embedding(folder: Path, config: dict, factors: list[Factor]) -> None:
    """A condition embedding made for this data set's factors, which the UNet adds to its
    time embedding (``class_embed_type`` identity)."""
    if config.get("class_embed_type") != "identity":
        raise FolderError(
            f"model.path {folder}: {EMBEDDING} needs class_embed_type 'identity' in {CONFIG}, "
            f"not {config.get('class_embed_type')!r} (the UNet would ignore the condition)"
        )
    stored = json.loads(_embedding_header(folder / EMBEDDING).get("factors") or "null")
    if stored != [f.to_dict() for f in factors]:
        names = [entry.get("name") for entry in stored] if isinstance(stored, list) else stored
        raise FolderError(
            f"model.path {folder}: {EMBEDDING} was made for the factors {names} or their values, "
            f"not this data set's {[f.name for f in factors]}"
        )


def embedding_frequencies(folder: Path) -> int:
    header = _embedding_header(Path(folder) / EMBEDDING)
    try:
        return int(header["cond_frequencies"])
    except (KeyError, ValueError):
        raise FolderError(f"{Path(folder) / EMBEDDING}: no cond_frequencies in its header") from None


def _embedding_header(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise FolderError(f"{path}: unreadable ({exc})") from None


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    """The network's weights as the project's wrapper names them."""
    folder = Path(folder)
    state = {f"unet.{key}": value for key, value in _read_tensors(folder / WEIGHTS).items()}
    if (folder / EMBEDDING).is_file():
        state |= {f"conditioner.{key}": value for key, value in _read_tensors(folder / EMBEDDING).items()}
    return state


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise FolderError(f"{path}: unreadable weights ({exc})") from None


def export(model: DiffusersScoreNet, folder: Path) -> None:
    """``model`` as a save_pretrained folder (and its condition embedding beside it),
    written beside ``folder`` first and renamed into place: never half-written."""
    folder = Path(folder)
    if folder.exists():
        raise FolderError(f"{folder} exists: export writes a new folder")
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.unet.save_pretrained(str(partial), safe_serialization=True)
    if model.conditioning == "embedding":
        factors = json.dumps([f.to_dict() for f in model.factors])
        header = {"factors": factors, "cond_frequencies": str(model.cond_frequencies)}
        state = {key: value.contiguous() for key, value in model.conditioner.state_dict().items()}
        save_file(state, str(partial / EMBEDDING), metadata=header)
    partial.rename(folder)
