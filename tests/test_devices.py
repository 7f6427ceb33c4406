"""Which device the networks run on: cuda, then Apple's mps, then the CPU, or the one
$LATENT_ABSTRACTIONS_DEVICE names; a device this machine lacks is one clear error."""

from __future__ import annotations

import pytest
import torch

from latent_abstractions import devices
from latent_abstractions.errors import InputError


def test_the_first_available_device_is_chosen(monkeypatch):
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert devices.available_devices() == ["mps", "cpu"]
    assert devices.select_device() == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert devices.select_device() == torch.device("cpu")


def test_the_environment_names_the_device_and_a_missing_one_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv(devices.DEVICE_ENV, "cpu")
    assert devices.select_device() == torch.device("cpu")
    monkeypatch.setenv(devices.DEVICE_ENV, "cuda")
    with pytest.raises(InputError, match="LATENT_ABSTRACTIONS_DEVICE='cuda': this machine has cpu"):
        devices.select_device()


def test_ops_mps_lacks_fall_back_to_the_cpu():
    import os

    assert os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"
