"""Write the lock files `make install` installs from (exact versions with hashes), with uv:

- requirements-cpu.lock: everything, torch pinned to the CPU build of constraints-cpu.txt;
- requirements-gpu.lock: the same without torch, for a machine that brings its CUDA build.

Each starts with the sha256 of what it was compiled from (the dependency lists of
pyproject.toml and constraints-cpu.txt); tests/test_lock.py fails when that no longer
matches. Run `make lock` after changing a dependency.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints-cpu.txt"
LOCKS = {"requirements-cpu.lock": [], "requirements-gpu.lock": ["--no-emit-package", "torch"]}
EXTRAS = ["dev", "cluster"]
PYTHON_VERSION = "3.11"
HEADER = "# inputs-sha256: "


def inputs_sha256() -> str:
    """The hash of every dependency the locks are compiled from."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    inputs = {
        "dependencies": project["dependencies"],
        "extras": {name: project["optional-dependencies"][name] for name in EXTRAS},
        "constraints": CONSTRAINTS.read_text(),
        "python": PYTHON_VERSION,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_sha256(lock: Path) -> str | None:
    first = lock.read_text().splitlines()[0] if lock.is_file() else ""
    return first[len(HEADER) :] if first.startswith(HEADER) else None


def pip_find_links() -> list[str]:
    """``--find-links`` options for the folders pip itself installs from (pip's own config;
    a CPU build of torch may sit there rather than on an index). uv does not read it."""
    found = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True
    )
    folders = found.stdout.split() if found.returncode == 0 else []
    return [option for folder in folders for option in ("--find-links", folder)]


def compile_lock(name: str, options: list[str]) -> None:
    extras = [argument for extra in EXTRAS for argument in ("--extra", extra)]
    command = ["uv", "pip", "compile", "pyproject.toml", *extras, "-c", CONSTRAINTS.name, "--generate-hashes"]
    command += ["--python-version", PYTHON_VERSION, *pip_find_links(), "--no-header", "--quiet"]
    locked = subprocess.run([*command, *options], cwd=ROOT, capture_output=True, text=True)
    if locked.returncode != 0:
        sys.exit(f"error: uv pip compile failed for {name}:\n{locked.stderr[-3000:]}")
    (ROOT / name).write_text(f"{HEADER}{inputs_sha256()}\n{locked.stdout}")


if __name__ == "__main__":
    for lock_name, lock_options in LOCKS.items():
        compile_lock(lock_name, lock_options)
        print(f"wrote {lock_name}")
