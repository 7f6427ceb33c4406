"""Factor vector -> conditioning embedding, with a null value per factor.

Continuous factors get a sinusoidal encoding (as in the bumps study), categorical
ones a learned embedding. Each factor is encoded on its own and the encodings are summed. A factor whose
``keep`` flag is False contributes a learned null embedding instead, independent
of its value, so one network gives the score given any subset of factors,
including none (classifier-free-style dropout, as MINDE needs).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core.errors import InputError
from ..core.factors import Factor


def sinusoidal(u: torch.Tensor, frequencies: int) -> torch.Tensor:
    """Encode values ``u`` (B,) in [0, 1] as sin/cos at octave-spaced frequencies: (B, 2F)."""
    scales = math.pi * 2.0 ** torch.arange(frequencies, device=u.device, dtype=u.dtype)
    angles = u[:, None] * scales[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ContinuousFactorEncoder(nn.Module):
    """Sinusoidal encoding of a continuous factor rescaled to [0, 1], then a small MLP."""

    def __init__(self, low: float, high: float, frequencies: int, dim: int):
        super().__init__()
        self.low, self.span, self.frequencies = low, max(high - low, 1e-12), frequencies
        self.project = nn.Linear(2 * frequencies, dim)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.project(sinusoidal((values - self.low) / self.span, self.frequencies))


class CategoricalFactorEncoder(nn.Module):
    """A learned embedding per value; the input is the value's index (as a float)."""

    def __init__(self, cardinality: int, dim: int):
        super().__init__()
        self.cardinality = cardinality
        self.embed = nn.Embedding(cardinality, dim)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        # Clamped so that a dropped factor's placeholder value cannot index out of range.
        return self.embed(indices.long().clamp(0, self.cardinality - 1))


class FactorConditioner(nn.Module):
    def __init__(self, factors: list[Factor], dim: int, frequencies: int):
        super().__init__()
        self.names = [f.name for f in factors]
        self.encoders = nn.ModuleList(
            ContinuousFactorEncoder(f.low, f.high, frequencies, dim)
            if f.kind == "continuous"
            else CategoricalFactorEncoder(f.cardinality, dim)
            for f in factors
        )
        self.null = nn.Parameter(torch.zeros(len(factors), dim))

    def forward(self, values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``values`` (B, n_factors): a continuous factor's value or a categorical one's
        index; ``keep`` (B, n_factors) bool -> (B, dim)."""
        total = torch.zeros(values.shape[0], self.null.shape[1], device=values.device, dtype=self.null.dtype)
        for index, encoder in enumerate(self.encoders):
            encoded = encoder(values[:, index])
            total = total + torch.where(keep[:, index, None], encoded, self.null[index].expand_as(encoded))
        return total


def subset_keep_mask(
    batch: int, n_factors: int, p_none: float, p_all: float, p_single: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training-time keep flags (B, n_factors) that train every pass the estimators use.

    Per row: keep none with ``p_none``, all with ``p_all``, one uniformly chosen factor
    alone with ``p_single``, and otherwise a uniformly random subset (its size uniform
    in 0..n_factors, then its members uniform). Independent per-factor dropout would
    keep "factor k alone" with probability about (1 - p) p^(K - 1), which is tiny for
    many factors. Here P(k alone) = p_single / K + p_rest / (K (K + 1)), with
    p_rest = 1 - p_none - p_all - p_single.
    """
    probabilities = {"p_none": p_none, "p_all": p_all, "p_single": p_single}
    for name, p in probabilities.items():
        if not 0.0 <= p <= 1.0:
            raise InputError(f"{name} must lie in [0, 1], got {p}")
    if sum(probabilities.values()) > 1.0 + 1e-9:
        raise InputError(f"p_none + p_all + p_single must not exceed 1, got {sum(probabilities.values())}")
    if n_factors < 1:
        raise InputError(f"need at least one factor, got {n_factors}")
    # Each row picks how many factors to keep; the kept ones are the lowest random ranks.
    device = generator.device if generator is not None else None  # drawn where the generator lives
    u = torch.rand(batch, generator=generator, device=device)
    size = torch.randint(0, n_factors + 1, (batch,), generator=generator, device=device)
    size = torch.where(u < p_none + p_all + p_single, torch.ones_like(size), size)
    size = torch.where(u < p_none + p_all, torch.full_like(size, n_factors), size)
    size = torch.where(u < p_none, torch.zeros_like(size), size)
    ranks = torch.rand(batch, n_factors, generator=generator, device=device).argsort(dim=1).argsort(dim=1)
    return ranks < size[:, None]
