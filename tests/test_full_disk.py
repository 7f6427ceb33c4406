"""A full disk: the stages run with data/ on a small tmpfs that fills up. Each failing
write ends the step with one line naming what it was writing (no traceback), leaves no
half-written output, and keeps every earlier output byte for byte; once space is
freed, a rerun completes (the trajectory store resumes from its finished batches)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_resume import environment

from conftest import tiny_experiment

pytestmark = pytest.mark.slow
DISK_BYTES = 48 * 2**20
FILLER = ".filler"


def step(name: str) -> list[str]:
    return [sys.executable, "-m", f"latent_abstractions.stages.{name}", "--experiment", "tiny"]


def run(cwd: Path, name: str) -> subprocess.CompletedProcess:
    """The stage as a process; its result, whether it failed or not."""
    return subprocess.run(step(name), cwd=cwd, env=environment(), capture_output=True, text=True, timeout=600)


def contents(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != FILLER
    }


def fill(disk: Path, leave_bytes: int) -> Path:
    """A filler file taking all but ``leave_bytes`` of the file system's free space."""
    filler = disk / FILLER
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "wb") as handle:
        handle.truncate(0)
        os.posix_fallocate(handle.fileno(), 0, max(free - leave_bytes, 1))
    return filler


@pytest.fixture
def small_disk(workdir):
    """`data/` of a working directory on its own tmpfs of DISK_BYTES, unmounted afterwards."""
    data = workdir / "data"
    data.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(data)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield workdir
    finally:
        subprocess.run(["umount", "-l", str(data)], check=True)


def assert_fails_cleanly(result: subprocess.CompletedProcess, stage: str, before: dict, data: Path) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    written = last.startswith(f"error: {stage} for experiment tiny: no space left on the device")
    written = written and last.endswith("outputs already in place are untouched")
    refused = (
        last.startswith(f"error: {stage} for experiment tiny: ") and " of disk, " in last
    )  # budgets.py, before compute
    assert written or refused, last
    after = contents(data)
    assert {name: digest for name, digest in after.items() if name in before} == before  # earlier outputs intact
    new = set(after) - set(before)  # only a trajectory store's resumable batches, never an output
    assert all(".partial/" in name for name in new), new


def test_a_full_disk_stops_each_stage_in_one_line_and_keeps_earlier_outputs(small_disk, ci_params):
    params = tiny_experiment(ci_params, steps=40, batch_size=16, checkpoints=2)
    params["experiments"]["tiny"]["sample"].update(steps=20, batch_size=16, eval_block=16, per_position=4)  # 3 batches
    (small_disk / "params.yaml").write_text(yaml.safe_dump(params))
    data = small_disk / "data"
    for name in ("prepare_data", "train_score_model"):
        assert run(small_disk, name).returncode == 0, name

    # The data set again, with another seed, onto a full disk: the old one stays.
    before = contents(data)
    filler = fill(data, leave_bytes=0)
    params["experiments"]["tiny"]["dataset"]["seed"] += 1
    (small_disk / "params.yaml").write_text(yaml.safe_dump(params))
    assert_fails_cleanly(run(small_disk, "prepare_data"), "prepare_data", before, data)
    params["experiments"]["tiny"]["dataset"]["seed"] -= 1
    (small_disk / "params.yaml").write_text(yaml.safe_dump(params))

    # Trajectories: a first run measures the store; then with room for half of it, some
    # batches fit and the disk is full; no store appears.
    filler.unlink()
    assert run(small_disk, "sample_trajectories").returncode == 0
    store = data / "tiny" / "trajectories"
    complete = contents(store)
    size = sum((store / name).stat().st_size for name in complete)
    shutil.rmtree(store)
    filler = fill(data, leave_bytes=size // 2)
    assert_fails_cleanly(run(small_disk, "sample_trajectories"), "sample_trajectories", before, data)
    assert not store.exists() and (data / "tiny" / "trajectories.partial").is_dir()

    # Space freed: the rerun resumes and ends with the same store, byte for byte.
    filler.unlink()
    result = run(small_disk, "sample_trajectories")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming" in result.stderr
    assert contents(store) == complete and not (data / "tiny" / "trajectories.partial").exists()
    assert {name: digest for name, digest in contents(data).items() if name in before} == before
