"""The software is an input: `make install` installs the locks' exact versions, and a lock
that no longer matches pyproject.toml's dependencies fails here (run `make lock`).

The locks are universal (markers split them by Python and platform). What this machine
can prove about other platforms: the resolver, reading the package index's metadata for a
given (Python, platform), resolves the lock's pins there (a wheel or source for each, a
torch wheel for the pinned release) and needs no package the lock lacks. What it cannot
prove: that those wheels install and import there (no Mac or aarch64 machine ran them)."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latent_abstractions.core import artifacts

from conftest import ROOT

UV = str(Path(sys.executable).with_name("uv"))
PYTHONS = ("3.11", "3.12", "3.13")
PLATFORMS = ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "aarch64-apple-darwin")
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+?)(?: ; (.+?))? \\$")


def lock_script(name: str = "lock.py"):
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "workflow" / "scripts" / name)
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
    assert lock.inputs_sha256() != before


def test_the_locks_leave_torch_and_its_cuda_runtime_out_and_the_run_lock_leaves_the_dev_tools_out():
    run, dev = ((ROOT / name).read_text() for name in ("requirements.lock", "requirements-dev.lock"))
    for text in (run, dev):
        pins = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
        assert pins and all(line.endswith("\\") for line in pins)  # each followed by its hashes
        assert not any(lock_script().TORCH_ONLY.match(line) for line in pins)
    for tool in ("pytest", "ruff", "playwright", "duckdb", "uv"):
        assert f"\n{tool}==" not in run and f"\n{tool}==" in dev


def test_the_dev_lock_pins_every_shared_package_at_the_run_locks_version():
    run, dev = (versions((ROOT / name).read_text()) for name in ("requirements.lock", "requirements-dev.lock"))
    assert {name: dev.get(name) for name in run} == run


def pins(text: str) -> list[tuple[tuple[str, str | None], str]]:
    """((name, marker), version) for every pin of a lock."""
    found = (PIN.match(line) for line in text.splitlines())
    return [((match[1].lower(), match[3]), match[2]) for match in found if match]


def versions(text: str) -> dict[str, set[str]]:
    """Each package's pinned versions (several where markers split it)."""
    found: dict[str, set[str]] = {}
    for (name, _), version in pins(text):
        found.setdefault(name, set()).add(version)
    return found


def resolve(lock: Path, python: str, platform: str) -> subprocess.CompletedProcess:
    command = [UV, "pip", "compile", str(lock), str(ROOT / "constraints.txt"), "--no-header", "--quiet"]
    command += ["--python-version", python, "--python-platform", platform, "--only-binary", "torch"]
    # torch's macOS wheels are built for macOS 14 and later.
    environment = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": "14.0"}
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("python", PYTHONS)
def test_the_dev_lock_resolves_to_its_own_pins_for_every_supported_python_and_platform(python, platform):
    resolved = resolve(ROOT / "requirements-dev.lock", python, platform)
    unreachable = ("Failed to fetch", "dns error", "Could not connect", "tcp connect error")
    if resolved.returncode != 0 and any(sign in resolved.stderr for sign in unreachable):
        pytest.skip(f"the package index cannot be reached: {resolved.stderr.strip()[-200:]}")
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    lines = [line for line in resolved.stdout.splitlines() if "==" in line]
    chosen = {line.split("==")[0].lower(): line.split("==")[1].split()[0] for line in lines}
    assert chosen.pop("torch") == lock_script("install_torch.py").pinned_torch()
    # torch's own runtime comes with torch from its index, never from the lock.
    chosen = {name: version for name, version in chosen.items() if not lock_script().TORCH_ONLY.match(f"{name}==")}
    locked = versions((ROOT / "requirements-dev.lock").read_text())
    assert chosen and {name: version for name, version in chosen.items() if version not in locked.get(name, ())} == {}


def test_python_3_10_is_refused_in_one_line_naming_the_python_and_platform():
    refused = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.version_info = (3, 10, 14); import runpy; "
            f"sys.argv = ['install_torch.py']; runpy.run_path({str(ROOT / 'workflow/scripts/install_torch.py')!r}, run_name='__main__')",
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and refused.stdout == ""
    assert (
        refused.stderr.count("\n") == 1
        and "supports Python 3.11 to 3.13" in refused.stderr
        and "Python " in refused.stderr
    )


def test_torch_comes_from_the_cpu_index_on_linux_where_reachable_and_otherwise_from_pypi():
    install_torch = lock_script("install_torch.py")
    assert install_torch.torch_index("Linux", True) == install_torch.CPU_INDEX
    assert install_torch.torch_index("Linux", False) is None
    assert install_torch.torch_index("Darwin", True) is None


def test_every_artifact_records_the_locks_and_the_versions_that_made_it():
    made = artifacts.provenance("prepare_data", "bumps", {}, [])["software"]
    assert made["locks"]["requirements.lock"] == artifacts.file_sha256(ROOT / "requirements.lock")
    assert made["versions"]["torch"] == torch.__version__
    assert set(made["versions"]) == {"torch", "numpy", "pyarrow", "matplotlib", "snakemake", "dvc"}
    assert all(made["versions"].values())


def test_a_torch_release_the_index_lacks_is_one_line_naming_the_python_and_platform(monkeypatch, capsys):
    install_torch = lock_script("install_torch.py")
    monkeypatch.setattr(install_torch, "installed_torch", lambda: None)  # as in a new .venv
    monkeypatch.setattr(install_torch, "pinned_torch", lambda: "0.0.0")  # no such release anywhere
    monkeypatch.setattr(install_torch, "reachable", lambda url, timeout=5.0: False)
    assert install_torch.main() == 1
    said = capsys.readouterr()
    assert said.out == "" and said.err.count("\n") == 1
    assert said.err.startswith(f"error: no torch 0.0.0 for Python {platform.python_version()} on {platform.system()}")
