"""Data parallelism through torchrun, on CPU with the gloo backend: two processes at the
same global batch follow the loss trajectory of one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from safetensors.torch import load_file

from latent_abstractions.training.distributed import World

from conftest import tiny_experiment

STEP = ["-m", "latent_abstractions.stages.train_score_model", "--experiment", "tiny"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cwd: Path, command: list[str]) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def losses(cwd: Path) -> np.ndarray:
    return pq.read_table(cwd / "data" / "tiny" / "model" / "loss.parquet").column("loss").to_numpy()


@pytest.mark.slow
def test_two_processes_match_one_at_the_same_global_batch(workdir, ci_params):
    params = tiny_experiment(ci_params, steps=40, batch_size=16, resume_every=0, checkpoints=2)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run(workdir, [sys.executable, "-m", "latent_abstractions.stages.prepare_data", "--experiment", "tiny"])
    run(workdir, [sys.executable, *STEP])
    single = losses(workdir)
    single_weights = load_file(str(workdir / "data" / "tiny" / "model" / "weights.safetensors"))
    shutil.rmtree(workdir / "data" / "tiny" / "model")

    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc-per-node=2",
        f"--master-port={free_port()}",
    ]
    run(workdir, [*torchrun, *STEP])
    double = losses(workdir)
    double_weights = load_file(str(workdir / "data" / "tiny" / "model" / "weights.safetensors"))

    assert len(single) == len(double) == 40
    assert np.allclose(single, double, rtol=1e-4, atol=1e-6), np.abs(single - double).max()
    for key, value in single_weights.items():
        assert torch.allclose(value, double_weights[key], rtol=1e-3, atol=1e-5), key


def test_world_shards_and_mean():
    batch = torch.arange(8)
    assert World(rank=1, size=2).shard(batch).tolist() == [4, 5, 6, 7]
    assert World().shard(batch).tolist() == list(range(8))
    assert float(World().mean(torch.tensor(3.0))) == 3.0
