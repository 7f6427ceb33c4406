"""The software is an input: `make install` installs the lock files' exact versions, and
a lock that no longer matches pyproject.toml's dependencies fails here (run `make lock`)."""

from __future__ import annotations

import importlib.util

import torch

from latent_abstractions import artifacts

from conftest import ROOT


def lock_script():
    spec = importlib.util.spec_from_file_location("lock", ROOT / "workflow" / "scripts" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_lock_was_compiled_from_the_dependencies_pyproject_lists_now():
    lock = lock_script()
    for name in lock.LOCKS:
        assert lock.recorded_sha256(ROOT / name) == lock.inputs_sha256(), f"{name} is stale: run `make lock`"


def test_a_changed_dependency_makes_the_locks_stale(tmp_path, monkeypatch):
    lock = lock_script()
    before = lock.inputs_sha256()
    copy = tmp_path / "pyproject.toml"
    copy.write_text((ROOT / "pyproject.toml").read_text().replace('"numpy>=1.26"', '"numpy>=2.0"'))
    monkeypatch.setattr(lock, "ROOT", tmp_path)
    monkeypatch.setattr(lock, "CONSTRAINTS", ROOT / "constraints-cpu.txt")
    assert lock.inputs_sha256() != before


def test_the_cpu_lock_pins_the_cpu_torch_and_the_gpu_lock_leaves_torch_out():
    cpu, gpu = ((ROOT / name).read_text() for name in ("requirements-cpu.lock", "requirements-gpu.lock"))
    pinned = next(line for line in (ROOT / "constraints-cpu.txt").read_text().splitlines() if line.startswith("torch"))
    assert f"\n{pinned}+cpu " in cpu
    assert "\ntorch==" not in gpu
    for text in (cpu, gpu):
        requirements = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
        assert requirements and all(line.endswith("\\") for line in requirements)  # each followed by its hashes


def test_every_artifact_records_the_locks_and_the_versions_that_made_it():
    made = artifacts.provenance("prepare_data", "bumps", {}, [])["software"]
    assert made["locks"]["requirements-cpu.lock"] == artifacts.file_sha256(ROOT / "requirements-cpu.lock")
    assert made["versions"]["torch"] == torch.__version__
    assert set(made["versions"]) == {"torch", "numpy", "pyarrow", "matplotlib", "snakemake", "dvc"}
    assert all(made["versions"].values())
