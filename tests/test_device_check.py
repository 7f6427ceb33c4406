"""The GPU device check rehearsed on this CPU (benchmarks/gpu_device_check.sh): an
interpreter that lacks what the device image lacks, the carried wheels installed into a
temporary folder, the preflight, each part under its cap, the exit status, the files
that come back. Only the mechanics: the numbers need a device."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "benchmarks" / "gpu_device_check.sh"
WHEELS = ROOT / "benchmarks" / "device_wheels"
# The device image's published packages lack these; an import of one is served only from
# the folder the script installs the carried wheels into.
IMAGE_LACKS = """
import importlib.machinery, os, sys
LACKS = {"jsonschema", "jsonschema_specifications", "referencing", "rpds", "umap", "snakemake", "dvc"}
CARRIED = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p.startswith(os.environ["TMPDIR"])]

class ImageLacks:
    def find_spec(self, name, path=None, target=None):
        if path is not None or name.split(".")[0] not in LACKS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, CARRIED)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (the device image lacks it)", name=name)
        return spec

sys.meta_path.insert(0, ImageLacks())
"""


def rehearse(tmp_path: Path, **settings: str) -> tuple[subprocess.CompletedProcess, Path]:
    site, scratch, out = tmp_path / "site", tmp_path / "tmp", tmp_path / "out"
    site.mkdir()
    scratch.mkdir()
    (site / "sitecustomize.py").write_text(IMAGE_LACKS)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
        "PYTHONPATH": str(site),
        "TMPDIR": str(scratch),
        "PYTHON": sys.executable,
        "OUT": str(out),
        **settings,
    }
    result = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return result, out


def test_the_interpreter_lacks_what_the_image_lacks(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(IMAGE_LACKS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TMPDIR": str(tmp_path / "none")}
    probe = subprocess.run([sys.executable, "-c", "import jsonschema"], env=env, capture_output=True, text=True)
    assert probe.returncode == 1 and "the device image lacks it" in probe.stderr


def test_the_rehearsal_runs_the_parts_under_their_caps_and_says_which_failed(tmp_path):
    result, out = rehearse(
        tmp_path, DEVICE_CHECK_CPU="1", DEVICE_CHECK_TINY="1", PARTS="train_bumps resume", CAP_resume="2"
    )
    summary = (out / "summary.txt").read_text().splitlines()
    assert result.returncode == 2, result.stdout + result.stderr  # 2^1: the second part, resume, failed
    assert summary[0].startswith("train_bumps: exit 0") and "speedup=" in summary[0]
    assert summary[1].startswith("resume: out of time (cap 2 s)")
    returned = sorted(p.name for p in out.iterdir())
    assert returned == ["device.txt", "logs.tar.gz", "summary.txt"] and len(returned) <= 8
    with tarfile.open(out / "logs.tar.gz") as bundle:
        assert {"./train_bumps.log", "./resume.log", "./preflight.log", "./carried.log"} <= set(bundle.getnames())
    assert "cpu (rehearsal)" in (out / "device.txt").read_text()


def test_no_cuda_device_stops_in_one_line_before_any_part(tmp_path):
    result, out = rehearse(tmp_path, PARTS="train_bumps")
    assert result.returncode == 64
    assert (out / "summary.txt").read_text().strip() == (
        "error: no CUDA device: torch.cuda.is_available() is False; nothing was measured"
    )


def test_the_carried_wheels_are_small():
    size = sum(p.stat().st_size for p in WHEELS.glob("*.whl"))
    assert 0 < size < 2 << 20  # far under the 64 MiB that travels with the working tree
