"""Where the networks run: the GPU when there is one, else the CPU."""

from __future__ import annotations

import torch


def select_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
