"""A conditional U-Net predicting the noise epsilon: residual blocks with GroupNorm,
self-attention at chosen levels and in the middle, the time and factor embedding fed
to every block as a per-channel scale and shift.

Every block has a stable dotted name (``down.<level>``, ``mid``, ``up.<level>``);
``forward(..., taps=[...])`` returns those blocks' activations from the same
forward pass, with no hooks and no global state.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import InputError
from ...core.factors import Factor
from ..conditioning import FactorConditioner
from .taps import score_unet_names


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of t in [0, 1] (scaled by 1000): (B, dim)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def channels_last_group_norm(x: torch.Tensor, groups: int, weight, bias, eps: float) -> torch.Tensor:
    """GroupNorm of a channels_last (B, C, H, W) map that stays channels_last: statistics
    in fp32 over the (B, H*W, groups, C/groups) view, the result in ``x``'s dtype."""
    batch, channels, height, width = x.shape
    grouped = x.permute(0, 2, 3, 1).reshape(batch, height * width, groups, channels // groups).float()
    variance, mean = torch.var_mean(grouped, dim=(1, 3), keepdim=True, correction=0)
    normed = ((grouped - mean) * torch.rsqrt(variance + eps)).reshape(batch, height, width, channels)
    if weight is not None:
        normed = normed * weight.float() + bias.float()
    return normed.to(x.dtype).permute(0, 3, 1, 2)


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm, except that on CUDA a channels_last map stays channels_last (PyTorch's
    CUDA kernel returns NCHW, which costs two transposes around every GroupNorm -> conv
    pair, and under torch.compile the fused kernel then follows the map's layout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cuda" and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            return channels_last_group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return super().forward(x)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the embedding as a per-channel scale and shift."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1 = GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    def __init__(self, channels: int, groups: int, heads: int = 1):
        super().__init__()
        self.heads = heads
        self.norm = GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        # (batch, tokens, 3, heads, head dim): views of a channels_last map, whose channels
        # are innermost; q, k, v as (batch, heads, tokens, head dim) with the head dim contiguous.
        qkv = self.qkv(self.norm(x)).permute(0, 2, 3, 1).reshape(batch, height * width, 3, self.heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if x.device.type == "cpu":  # the CPU's fused kernel wants them contiguous (else its unfused one)
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        attended = F.scaled_dot_product_attention(q, k, v)
        # One copy back to the map, in the input's memory format.
        out = attended.transpose(1, 2).reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        return x + self.out(
            out.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        )


class Stage(nn.Module):
    """The residual blocks of one resolution level, each followed by self-attention if asked."""

    def __init__(
        self, in_channels: int, out_channels: int, emb_dim: int, groups: int, blocks: int, attention: bool, heads: int
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            ResidualBlock(in_channels if i == 0 else out_channels, out_channels, emb_dim, groups) for i in range(blocks)
        )
        self.attention = nn.ModuleList(
            SelfAttention(out_channels, groups, heads) if attention else nn.Identity() for _ in range(blocks)
        )

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block, attention in zip(self.blocks, self.attention):
            h = attention(block(h, emb))
        return h


class ScoreUNet(nn.Module):
    def __init__(
        self,
        image_channels: int,
        factors: list[Factor],
        base_channels: int,
        channel_mults: list[int],
        groups: int,
        cond_frequencies: int,
        blocks_per_level: int = 1,
        attention_levels: tuple[int, ...] = (),
        heads: int = 1,
    ):
        super().__init__()
        widths = [base_channels * m for m in channel_mults]
        emb_dim = 4 * base_channels
        self.levels = len(widths)
        self.base_channels = base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conditioner = FactorConditioner(factors, emb_dim, cond_frequencies)
        self.stem = nn.Conv2d(image_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = widths[0]
        for level, width in enumerate(widths):
            self.down.append(
                Stage(previous, width, emb_dim, groups, blocks_per_level, level in attention_levels, heads)
            )
            last = level == self.levels - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(width, width, 3, stride=2, padding=1))
            previous = width
        self.mid = ResidualBlock(previous, previous, emb_dim, groups)
        self.mid_attention = SelfAttention(previous, groups, heads)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(self.levels)):
            width = widths[level]
            self.up.append(
                Stage(previous + width, width, emb_dim, groups, blocks_per_level, level in attention_levels, heads)
            )
            self.upsample.append(nn.Identity() if level == 0 else nn.Upsample(scale_factor=2, mode="nearest"))
            previous = width
        self.head = nn.Sequential(
            GroupNorm(groups, previous), nn.SiLU(), nn.Conv2d(previous, image_channels, 3, padding=1)
        )

    # Each factor's condition can be dropped on its own (the information estimate needs it).
    unavailable_estimates = None

    @property
    def tap_names(self) -> list[str]:
        return score_unet_names(self.levels)

    def check_taps(self, taps: list[str]) -> None:
        unknown = [tap for tap in taps if tap not in self.tap_names]
        if unknown:
            raise InputError(f"unknown feature tap {', '.join(unknown)}; this model has: {', '.join(self.tap_names)}")

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        factor_values: torch.Tensor,
        keep: torch.Tensor,
        taps: list[str] | tuple[str, ...] = (),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Predict epsilon at (x, t) given the kept factors; also return the named blocks' activations."""
        self.check_taps(list(taps))
        recorded: dict[str, torch.Tensor] = {}

        def record(name: str, value: torch.Tensor) -> torch.Tensor:
            if name in taps:
                recorded[name] = value
            return value

        emb = self.time_mlp(timestep_embedding(t, self.base_channels)) + self.conditioner(factor_values, keep)
        emb = F.silu(emb)
        h = self.stem(x)
        skips = []
        for level in range(self.levels):
            h = record(f"down.{level}", self.down[level](h, emb))
            skips.append(h)
            h = self.downsample[level](h)
        h = record("mid", self.mid_attention(self.mid(h, emb)))
        for position, level in enumerate(reversed(range(self.levels))):
            h = record(f"up.{level}", self.up[position](torch.cat([h, skips[level]], dim=1), emb))
            h = self.upsample[position](h)
        return self.head(h), recorded
