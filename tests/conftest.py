"""Shared fixtures: the repository root, a small experiment's params, a tiny trained-shape model."""

from __future__ import annotations

import collections
import copy
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The end-to-end tests' params (tiny scale); params.yaml is the science default users run.
CI_PARAMS = ROOT / "tests" / "params-ci.yaml"
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def pytest_collection_modifyitems(items):
    """Modules with the most slow (end-to-end) tests first, each keeping its own order:
    pytest-xdist hands out whole modules in this order, so the long ones start at once on
    workers of their own and the short ones fill the gaps."""
    slow_tests = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow_tests[item.path])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests work on small tensors, where a second thread only adds contention (up to 30x
    slower on a busy 2-core machine); pipeline runs in subprocesses are not affected."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_planned_params_left():
    """Snakemake run in-process (the DAG tests) exports the config it planned for its jobs;
    the next test's steps must not inherit it."""
    yield
    os.environ.pop("LATENT_ABSTRACTIONS_PARAMS", None)


@pytest.fixture(autouse=True)
def _repo_root_cwd(monkeypatch):
    """Steps resolve params.yaml and the schema from the working directory, as under Snakemake."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def workdir(tmp_path):
    """A bare working directory with the schema, as a step sees the repository root."""
    (tmp_path / "workflow" / "schemas").mkdir(parents=True)
    (tmp_path / "workflow" / "schemas" / "params.schema.yaml").write_text(
        (ROOT / "workflow" / "schemas" / "params.schema.yaml").read_text()
    )
    return tmp_path


@pytest.fixture
def default_params() -> dict:
    """params.yaml as the pipeline sees it: validated, with the schema's defaults filled in."""
    from latent_abstractions.pipeline import params

    with open(ROOT / "params.yaml") as handle:
        return params.validate(yaml.safe_load(handle))


@pytest.fixture
def ci_params() -> dict:
    """The tests' own params (tests/params-ci.yaml), validated, defaults filled in."""
    from latent_abstractions.pipeline import params

    with open(CI_PARAMS) as handle:
        return params.validate(yaml.safe_load(handle))


@pytest.fixture
def bumps_params(ci_params) -> dict:
    return copy.deepcopy(ci_params["experiments"]["bumps"])


def tiny_experiment(ci_params: dict, **train) -> dict:
    """params.yaml holding one experiment, `tiny`: 8x8 bumps and an 8-channel U-Net, for
    tests that run training steps as subprocesses."""
    experiment = copy.deepcopy(ci_params["experiments"]["bumps"])
    experiment["dataset"].update(height=8, width=8, margin=1.0, spacing_x=2.0, spacing_y=2.0)
    experiment["model"].update(base_channels=8, channel_mults=[1, 2], groups=4, taps=["mid"])
    experiment["train"].update(warmup_steps=5, **train)
    return {"experiments": {"tiny": experiment}}


def perturb(model, scale: float = 0.05):
    """Nudge every weight: the U-Net zero-initialises its output convolutions, which at
    initialisation would hide the effect of the condition."""
    import torch

    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return model
