"""A training run killed with SIGKILL at a random step and started again ends with the
same weights, bit for bit on a CPU, as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from latent_abstractions.core import safetensors_file
from latent_abstractions.training import resume

from conftest import tiny_experiment

STEP = [sys.executable, "-m", "latent_abstractions.stages.train_score_model", "--experiment", "tiny"]
KILL_SEED = int(os.environ.get("KILL_SEED", "20261125"))


def environment() -> dict:
    # One thread: the same reduction order in both runs. On the CPU unless RESUME_ON_GPU=1
    # (benchmarks/gpu_device_check.sh measures the resume on a GPU with it).
    # On a GPU in deterministic mode: cuDNN's and cuBLAS's deterministic kernels only, so that
    # the resumed run can be asserted bit-exact there too.
    on_gpu = os.environ.get("RESUME_ON_GPU") == "1"
    device = (
        {"LATENT_ABSTRACTIONS_DETERMINISTIC": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
        if on_gpu
        else {"CUDA_VISIBLE_DEVICES": ""}
    )
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", **device)


def run(cwd, command):
    result = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def outputs(cwd) -> dict:
    model = cwd / "data" / "tiny" / "model"
    files = {"weights": model / "weights.safetensors"}
    files |= {f"snapshot {p.name}": p for p in sorted((model / "checkpoints").iterdir())}
    tensors = {name: load_file(str(path)) for name, path in files.items()}
    loss = pq.read_table(model / "loss.parquet").column("loss").to_pylist()
    live = {path.relative_to(model).as_posix(): path.read_bytes() for path in sorted((model / "live").rglob("*.*"))}
    return {"tensors": tensors, "loss": loss, "live": live}


@pytest.mark.slow
def test_kill_and_resume_is_bit_exact(workdir, ci_params):
    params = tiny_experiment(ci_params, steps=1500, batch_size=16, resume_every=25, checkpoints=5)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run(workdir, [sys.executable, "-m", "latent_abstractions.stages.prepare_data", "--experiment", "tiny"])
    run(workdir, STEP)
    uninterrupted = outputs(workdir)
    shutil.rmtree(workdir / "data" / "tiny" / "model")

    resume_file = workdir / "data" / "tiny" / "model" / ".partial" / "resume.safetensors"
    process = subprocess.Popen(
        STEP, cwd=workdir, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    live = workdir / "data" / "tiny" / "model" / "live" / "metrics.json"
    while not (resume_file.exists() and live.exists()) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "training ended before its live metrics could be seen"
    assert json.loads(live.read_text())["step"] < 1500  # DVC's viewers follow the running training
    delay = random.Random(KILL_SEED).uniform(0.0, 1.5)  # seeded: a failure can be replayed
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "training finished before it could be killed"
    assert not (workdir / "data" / "tiny" / "model" / "weights.safetensors").exists()
    from safetensors import safe_open

    with safe_open(str(resume_file), framework="pt") as handle:
        resumed_from = int(handle.metadata()["step"])
    assert 0 < resumed_from < 1500, f"KILL_SEED={KILL_SEED}"

    run(workdir, STEP)
    resumed = outputs(workdir)
    assert not resume_file.exists()
    assert resumed["loss"] == uninterrupted["loss"] and len(resumed["loss"]) == 1500
    assert resumed["live"] == uninterrupted["live"] and len(resumed["live"]) == 3  # metrics.json and two curves
    assert resumed["tensors"].keys() == uninterrupted["tensors"].keys()
    for name, tensors in uninterrupted["tensors"].items():
        for key, value in tensors.items():
            assert value.dtype == resumed["tensors"][name][key].dtype
            assert bool((value == resumed["tensors"][name][key]).all()), (
                f"{name}: {key} differs (resumed at {resumed_from}, KILL_SEED={KILL_SEED})"
            )


def test_foreign_resume_file_is_ignored(tmp_path):
    path = tmp_path / "resume.safetensors"
    path.write_bytes(b"garbage")
    assert resume.fingerprint_of(path) is None
    assert resume.fingerprint_of(tmp_path / "missing.safetensors") is None


def test_a_resume_file_from_other_code_or_params_is_discarded_with_a_warning(workdir, ci_params):
    params = tiny_experiment(ci_params, steps=20, batch_size=8, resume_every=10, checkpoints=2)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run(workdir, [sys.executable, "-m", "latent_abstractions.stages.prepare_data", "--experiment", "tiny"])
    stale = workdir / "data" / "tiny" / "model" / ".partial" / "resume.safetensors"
    safetensors_file.write({"x": torch.zeros(1)}, stale, {"fingerprint": "made-by-other-code", "step": "5"})
    result = subprocess.run(STEP, cwd=workdir, env=environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        f"starting over: {stale.relative_to(workdir)} was made by other params, inputs, code, device type or graph setting"
        in result.stderr
    )
    assert len(pq.read_table(workdir / "data" / "tiny" / "model" / "loss.parquet")) == 20


def test_a_diverging_training_stops_with_one_line_and_keeps_the_resume_point_before_it(workdir, ci_params):
    """A learning rate of 1e30 overflows the loss within a few steps: the step ends in one
    line naming the step and the last finite loss; no weights, snapshots or loss table are
    written, and the resume checkpoint of the step before is kept."""
    params = tiny_experiment(ci_params, steps=30, batch_size=8, resume_every=1, checkpoints=2, learning_rate=1e30)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run(workdir, [sys.executable, "-m", "latent_abstractions.stages.prepare_data", "--experiment", "tiny"])
    result = subprocess.run(STEP, cwd=workdir, env=environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    found = re.fullmatch(
        r"error: training diverged at step (\d+): loss (nan|inf) \(last finite loss (\S+) at "
        r"step (\d+)\); no weights or checkpoints from this step on were written",
        last,
    )
    assert found, last
    step, last_finite_step = int(found[1]), int(found[4])
    assert 2 <= step < 30 and last_finite_step == step - 1
    model = workdir / "data" / "tiny" / "model"
    assert not (model / "weights.safetensors").exists() and not (model / "checkpoints").exists()
    assert not (model / "loss.parquet").exists()
    with safe_open(model / ".partial" / "resume.safetensors", "pt") as kept:
        assert int(kept.metadata()["step"]) == step - 1
