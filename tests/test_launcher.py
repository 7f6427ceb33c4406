"""Jobs find the environment's interpreter without an activated environment, or say in
one line what to do."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import ROOT

LAUNCHER = ROOT / "workflow" / "scripts" / "run_stage.py"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def load_launcher():
    spec = importlib.util.spec_from_file_location("run_stage", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_engine_interpreter_named_in_the_environment_runs_the_stage():
    env = {"PATH": SYSTEM_PATH, "LATENT_ABSTRACTIONS_PYTHON": sys.executable}
    result = subprocess.run(
        ["python3", str(LAUNCHER), "prepare_data", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "python -m latent_abstractions.stages.prepare_data" in result.stdout


def test_the_engine_interpreter_is_found_among_the_parent_processes():
    """As under `.venv/bin/dvc repro`: the job's shell is a child of the engine's interpreter."""
    env = {"PATH": SYSTEM_PATH}
    script = (
        f"import subprocess; raise SystemExit(subprocess.call('python3 {LAUNCHER} prepare_data --help', shell=True))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "python -m latent_abstractions.stages.prepare_data" in result.stdout


def test_without_an_environment_the_job_stops_with_one_line(monkeypatch):
    launcher = load_launcher()
    monkeypatch.setattr(
        launcher, "candidates", lambda: ["/usr/bin/python3"] if os.path.exists("/usr/bin/python3") else []
    )
    monkeypatch.setattr(launcher, "can_import_package", lambda python: False)
    with pytest.raises(SystemExit) as stopped:
        launcher.main(["prepare_data", "--experiment", "bumps"])
    message = str(stopped.value.code)
    assert message.startswith("error: no Python environment with latent_abstractions") and "\n" not in message
    assert "source .venv/bin/activate" in message
