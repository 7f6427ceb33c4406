"""Where the networks run: the GPU when there is one, else the CPU; and what the GPU can
do at most (its dense bf16 peak, the denominator of a model FLOP utilisation)."""

from __future__ import annotations

import os

import torch

# Peak dense bf16 tensor FLOP/s by device name (first match wins); PEAK_FLOPS overrides.
PEAK_BF16 = [
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("H800", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10", 125e12),
    ("L4", 121e12),
]


def select_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def peak_flops(device: torch.device) -> tuple[float | None, str]:
    """The device's peak dense bf16 FLOP/s and where the figure comes from (None: unknown)."""
    if os.environ.get("PEAK_FLOPS"):
        return float(os.environ["PEAK_FLOPS"]), "PEAK_FLOPS"
    if device.type != "cuda":
        return None, "CPU: no MFU"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16:
        if key in name:
            return value, f"{key} dense bf16"
    return None, f"unknown for {name!r}; set PEAK_FLOPS"
