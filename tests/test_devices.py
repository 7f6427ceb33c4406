"""Which device the networks run on: cuda, then Apple's mps, then the CPU, or the one
$LATENT_ABSTRACTIONS_DEVICE names; a device this machine lacks is one clear error."""

from __future__ import annotations

import os

import pytest
import torch

from latent_abstractions.core import devices
from latent_abstractions.core.errors import InputError


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


def test_the_stage_launcher_turns_on_the_mps_cpu_fallback_before_torch_loads():
    """torch reads PYTORCH_ENABLE_MPS_FALLBACK when it loads: the launcher sets it for the stage."""
    import subprocess
    import sys

    from conftest import ROOT

    environment = {key: value for key, value in os.environ.items() if key != "PYTORCH_ENABLE_MPS_FALLBACK"}
    script = (
        "import os, sys, runpy; sys.argv = ['run_stage.py', 'x']; "
        "os.execv = lambda path, argv: print(os.environ.get('PYTORCH_ENABLE_MPS_FALLBACK')) or sys.exit(0); "
        f"runpy.run_path({str(ROOT / 'workflow' / 'scripts' / 'run_stage.py')!r}, run_name='__main__')"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
    assert found.stdout.strip() == "1", found.stderr[-500:]
