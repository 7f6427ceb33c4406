"""A noise-conditional factor classifier q(y_k | x_t, t) for every factor k at once:
its architecture, the network, and the rows it reads.

Training is in classifier_training, prediction in classifier_prediction, checkpoints in
classifier_checkpoint, the evaluation in classifier_evaluation. The method in full:
docs/science.md, "The noise-conditional classifier bound".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import InputError
from ..core.factors import Factor
from ..core.image_rows import ROWS_PER_READ, ImageRows, half_free_memory
from ..diffusion.sde import SDE, T_MIN, VESDE, VPSDE, make_sde

if TYPE_CHECKING:
    from ..datasets.base import Dataset

ARCHITECTURE_KIND = "noise_classifier"
# The header's architecture keys the classifier is rebuilt from (architecture_for writes them).
ARCHITECTURE_KEYS = (
    "image_channels",
    "image_size",
    "factors",
    "channels",
    "groups",
    "frequencies",
    "embedding_dim",
    "sde",
    "t_min",
    "t_max",
)
CACHE_BYTES = 1 << 30  # off CUDA, training rows up to this size (uint8, or floats as float32) are kept in memory


class ClassifierError(InputError):
    """A classifier checkpoint that is unreadable or does not match what it is applied to,
    or a classifier that cannot be built."""


# ------------------------------------------------------------------ architecture


def sde_params(sde: SDE) -> dict:
    """The SDE as the params dict ``sde.make_sde`` reads back."""
    if isinstance(sde, VPSDE):
        return {"kind": "vp", "beta_min": float(sde.beta_min), "beta_max": float(sde.beta_max)}
    if isinstance(sde, VESDE):
        return {"kind": "ve", "sigma_min": float(sde.sigma_min), "sigma_max": float(sde.sigma_max)}
    raise ClassifierError(f"no params form for SDE {type(sde).__name__}; allowed: VPSDE, VESDE")


def factor_entry(factor: Factor) -> dict:
    """The factor's JSON form, its values as floats (a table may hold ints or NumPy numbers)."""
    return {**factor.to_dict(), "values": [float(v) for v in factor.values]}


def check_factors(factors: Sequence[Factor]) -> None:
    """Refuse a table with no factor, a repeated name or a factor with fewer than two values."""
    if not factors:
        raise ClassifierError("a factor classifier needs at least one factor")
    names = [f.name for f in factors]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ClassifierError(f"factor names repeat: {', '.join(repeated)}")
    for factor in factors:
        if factor.cardinality < 2:
            raise ClassifierError(
                f"factor {factor.name!r} has {factor.cardinality} class(es): a classifier needs at least 2 values"
            )


def architecture_for(
    factors: Sequence[Factor],
    image_shape: Sequence[int],
    sde: SDE,
    channels: Sequence[int] = (32, 64, 128),
    groups: int = 8,
    frequencies: int = 6,
    embedding_dim: int = 64,
    t_min: float = T_MIN,
    t_max: float = 1.0,
) -> dict:
    """Everything needed to rebuild the classifier; ``image_shape`` is (C, H, W).

    ``channels``: one entry per stride-2 level (the stem has ``channels[0]``);
    ``groups`` must divide every entry; ``frequencies``: sinusoids of the log-SNR.
    """
    architecture = {
        "kind": ARCHITECTURE_KIND,
        "image_channels": int(image_shape[0]),
        "image_size": [int(s) for s in image_shape[1:]],
        "factors": [factor_entry(f) for f in factors],
        "channels": [int(c) for c in channels],
        "groups": int(groups),
        "frequencies": int(frequencies),
        "embedding_dim": int(embedding_dim),
        "sde": sde_params(sde),
        "t_min": float(t_min),
        "t_max": float(t_max),
    }
    _check_architecture(architecture)
    return architecture


def _check_architecture(architecture: dict) -> None:
    if architecture.get("kind") != ARCHITECTURE_KIND:
        raise ClassifierError(f"not a {ARCHITECTURE_KIND} architecture (kind {architecture.get('kind')!r})")
    check_factors([Factor.from_dict(f) for f in architecture["factors"]])
    channels, groups = architecture["channels"], architecture["groups"]
    if not channels or any(c <= 0 or c % groups for c in channels):
        raise ClassifierError(f"classifier channels {channels} must be positive multiples of groups={groups}")
    if not 0.0 < architecture["t_min"] < architecture["t_max"]:
        raise ClassifierError(
            f"classifier times need 0 < t_min < t_max, got {architecture['t_min']}, {architecture['t_max']}"
        )


def _describe_factors(entries: list[dict]) -> str:
    return ", ".join(f"{e['name']} ({e['kind']}, {len(e['values'])} values)" for e in entries)


def check_matches(architecture: dict, dataset: Dataset) -> None:
    """Refuse (one-line ``ClassifierError``) a classifier whose factor table or image shape is
    not ``dataset``'s."""
    prefix = "classifier checkpoint does not match its data set: "
    ours = architecture["factors"]
    theirs = [factor_entry(f) for f in dataset.factor_table]
    if [e["name"] for e in ours] != [e["name"] for e in theirs]:
        raise ClassifierError(prefix + f"factors [{_describe_factors(ours)}] vs [{_describe_factors(theirs)}]")
    for mine, other in zip(ours, theirs):
        if mine["kind"] != other["kind"]:
            raise ClassifierError(prefix + f"factor {mine['name']!r} is {mine['kind']} vs {other['kind']}")
        if len(mine["values"]) != len(other["values"]) or not np.allclose(
            mine["values"], other["values"], rtol=1e-9, atol=0.0
        ):
            raise ClassifierError(prefix + f"factor {mine['name']!r} values {mine['values']} vs {other['values']}")
    shape = [architecture["image_channels"], *architecture["image_size"]]
    if shape != list(dataset.images.shape[1:]):
        raise ClassifierError(prefix + f"image shape {tuple(shape)} vs {tuple(dataset.images.shape[1:])}")


class _Level(nn.Module):
    """Stride-2 conv, GroupNorm, FiLM from the time embedding, SiLU, conv, GroupNorm, SiLU."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, embedding_dim: int):
        super().__init__()
        self.down = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.film = nn.Linear(embedding_dim, 2 * out_channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm1(self.down(h)) * (1.0 + scale) + shift)
        return F.silu(self.norm2(self.conv(h)))


class NoiseClassifier(nn.Module):
    """Logits of every factor's value index given x_t and t; ``forward`` returns one (B, V_k) per factor."""

    def __init__(self, architecture: dict):
        super().__init__()
        _check_architecture(architecture)
        self.architecture = architecture
        self.factors = [Factor.from_dict(f) for f in architecture["factors"]]
        self.sde = make_sde(architecture["sde"])
        self.t_min, self.t_max = architecture["t_min"], architecture["t_max"]
        ends = self.sde.log_snr(torch.tensor([self.t_max, self.t_min], dtype=torch.float64))
        self.log_snr_low, self.log_snr_high = float(ends[0]), float(ends[1])
        channels, groups = architecture["channels"], architecture["groups"]
        self.frequencies = architecture["frequencies"]
        width = architecture["embedding_dim"]
        self.embed = nn.Sequential(
            nn.Linear(1 + 2 * self.frequencies, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU()
        )
        self.stem = nn.Conv2d(architecture["image_channels"] + 2, channels[0], 3, padding=1)
        self.levels = nn.ModuleList(
            _Level(c_in, c_out, groups, width) for c_in, c_out in zip([channels[0]] + channels[:-1], channels)
        )
        self.heads = nn.ModuleList(nn.Linear(channels[-1], f.cardinality) for f in self.factors)

    def scaled_log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """lambda(t) mapped to [-1, 1] over [lambda(t_max), lambda(t_min)], t clamped to [t_min, t_max]."""
        log_snr = self.sde.log_snr(t.double().clamp(self.t_min, self.t_max))
        middle, half = (self.log_snr_high + self.log_snr_low) / 2, (self.log_snr_high - self.log_snr_low) / 2
        return ((log_snr - middle) / half).float()

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        u = self.scaled_log_snr(t)[:, None]
        omega = (math.pi / 2) * 2.0 ** torch.arange(self.frequencies, device=u.device, dtype=torch.float32)
        return torch.cat([u, torch.sin(omega * u), torch.cos(omega * u)], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> list[torch.Tensor]:
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(len(x))
        embedding = self.embed(self.time_features(t))
        b, _, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))[None].expand(b, 2, h, w)
        hidden = self.stem(torch.cat([x, grid], dim=1))
        for level in self.levels:
            hidden = level(hidden, embedding)
        pooled = hidden.mean(dim=(2, 3))
        return [head(pooled) for head in self.heads]


def build_model(architecture: dict) -> NoiseClassifier:
    return NoiseClassifier(architecture)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ------------------------------------------------------------------ data


def labels_of(dataset: Dataset) -> np.ndarray:
    """Each factor's value index (N, K) int64; continuous factors through their lattice index."""
    labels = np.asarray(dataset.bins(), dtype=np.int64)
    for k, factor in enumerate(dataset.factor_table):
        column = labels[:, k]
        if len(column) and (column.min() < 0 or column.max() >= factor.cardinality):
            raise ClassifierError(f"factor {factor.name!r}: value indices outside 0..{factor.cardinality - 1}")
    return labels


def held_out_rows(dataset: Dataset) -> np.ndarray:
    """The "test" rows of the data set's split; all rows when it has no split column or
    no test rows (then only the noise of the evaluation draws is held out)."""
    if "split" in dataset.factors:
        test = np.flatnonzero(dataset.factors["split"].to_numpy() == "test")
        if len(test):
            return test
    return np.arange(len(dataset.factors))


def device_rows(images: np.ndarray | torch.Tensor, rows: np.ndarray, device: torch.device) -> ImageRows:
    """The images of ``rows``, floats read as float32, kept on ``device`` in that form when
    they fit (on CUDA half its free memory, elsewhere ``CACHE_BYTES``; else read per
    batch); ``gather`` maps them there."""
    budget = half_free_memory(device) if device.type == "cuda" else CACHE_BYTES
    return ImageRows(images, rows, float_dtype=torch.float32).keep_on(device, budget, ROWS_PER_READ)
