"""Where the networks run: a CUDA GPU when there is one, else Apple's MPS where torch
offers it, else the CPU ($LATENT_ABSTRACTIONS_DEVICE overrides); and what the GPU can do
at most (its dense bf16 peak, the denominator of a model FLOP utilisation).

On MPS an op that backend lacks runs on the CPU: the stage launcher
(workflow/scripts/run_stage.py) sets PYTORCH_ENABLE_MPS_FALLBACK before torch loads. The
float64 computations (the exact curves, the information estimate) run on the CPU there.
Untested: no Mac has run the pipeline."""

from __future__ import annotations

import os

import torch

from .errors import InputError

DEVICE_ENV = "LATENT_ABSTRACTIONS_DEVICE"

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


def available_devices() -> list[str]:
    mps = getattr(torch.backends, "mps", None)
    return [
        *(["cuda"] if torch.cuda.is_available() else []),
        *(["mps"] if mps is not None and mps.is_available() else []),
        "cpu",
    ]


def select_device() -> torch.device:
    """The first of cuda, mps, cpu that this machine has, or the one $LATENT_ABSTRACTIONS_DEVICE names."""
    available = available_devices()
    wanted = os.environ.get(DEVICE_ENV, "").strip()
    if wanted and wanted not in available:
        raise InputError(f"{DEVICE_ENV}={wanted!r}: this machine has {', '.join(available)}")
    return torch.device(wanted or available[0])


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
