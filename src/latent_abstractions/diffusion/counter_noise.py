"""Counter-based Gaussian noise: N(0, 1) as a pure function of (key, draw, element).

Each trajectory has a 63-bit key (recording.stream_seed). Element e of its d-th draw is
made from an integer hash of (key, d, e), so a row's noise depends on its key and on
how many draws it has made, never on the batch it is in, and a whole batch is drawn by
a few elementwise kernels instead of one generator call per row. The hash works on
32-bit values held in int64, so it is exact on every device; the Gaussian comes from
two 32-bit uniforms by Box-Muller, computed in float64 (float32 where a device has no
float64) and returned as float32 (|z| < 6.7). CPU and CUDA give the same bits up to
the last-place rounding of log, cos and sin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

_MASK32 = 0xFFFFFFFF
_MIX_A, _MIX_B = 0x7FEB352D, 0x846CA68B  # the "lowbias32" hash's multipliers (C. Wellons)
_DRAW_SALT = 0x9E3779B9  # keeps draw 0 from hashing like a zero key


def _mul32(x: torch.Tensor, factor: int) -> torch.Tensor:
    """x <- (x * factor) mod 2**32 in place, for 0 <= x < 2**32, without int64 overflow:
    the high half's product only matters mod 2**16."""
    high = (x >> 16).mul_(factor).bitwise_and_(0xFFFF).bitwise_left_shift_(16)
    return x.bitwise_and_(0xFFFF).mul_(factor).add_(high).bitwise_and_(_MASK32)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash with low bias, on int64 tensors holding 32-bit
    values; it overwrites ``x`` (in-place kernels: the hash is memory-bound)."""
    x ^= x >> 16
    _mul32(x, _MIX_A)
    x ^= x >> 15
    _mul32(x, _MIX_B)
    x ^= x >> 16
    return x


def row_states(keys: torch.Tensor, draw: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) int64 keys -> the (B, 1) 32-bit state of each row at draw ``draw``, and its key's high half."""
    low, high = keys & _MASK32, (keys >> 32) & _MASK32
    salt = int(mix32(torch.tensor((draw ^ _DRAW_SALT) & _MASK32, dtype=torch.int64)))  # on the host: no copy a draw
    return mix32(low ^ mix32(high ^ salt))[:, None], high[:, None]


def uniform_bits(keys: torch.Tensor, draw: int, count: int) -> torch.Tensor:
    """(B, count) int64 in [0, 2**32): the hash of (key, draw, element) for elements 0..count-1."""
    state, high = row_states(keys, draw)
    elements = torch.arange(count, dtype=torch.int64, device=keys.device)[None, :]
    return mix32(mix32(elements ^ state).bitwise_xor_(high))


def _float_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def gaussian(keys: torch.Tensor, draw: int, features: int) -> torch.Tensor:
    """(B, features) float32 standard Gaussians for each row's key at draw ``draw``."""
    pairs = (features + 1) // 2
    bits = uniform_bits(keys, draw, 2 * pairs).to(_float_dtype(keys.device))
    radius_bits, angle_bits = bits[:, 0::2], bits[:, 1::2]
    radius = torch.sqrt(-2.0 * torch.log((radius_bits + 1.0) * 2.0**-32))  # uniform in (0, 1]
    angle = (2.0 * math.pi * 2.0**-32) * angle_bits  # uniform in [0, 2 pi)
    z = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1).flatten(1)
    return z[:, :features].float()


class CounterNoise:
    """A sampler's ``noise(shape)``, row i from trajectory key i: each call is the next
    draw of every row, made in one batch. Shapes are (B, ...) with B the number of keys."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.keys = torch.tensor([int(s) for s in seeds], dtype=torch.int64, device=self.device)
        if len(self.keys) and int(self.keys.min()) < 0:
            raise ValueError("noise keys must be non-negative 63-bit integers")
        self.draws = 0

    def __call__(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        shape = tuple(int(n) for n in shape)
        if shape[0] != len(self.keys):
            raise ValueError(f"noise for {shape[0]} rows asked of {len(self.keys)} trajectory keys")
        features = math.prod(shape[1:])
        out = gaussian(self.keys, self.draws, features).reshape(shape).to(dtype)
        self.draws += 1
        return out
