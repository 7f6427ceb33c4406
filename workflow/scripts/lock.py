"""Write the lock files `make install` installs from (exact versions with hashes), with uv,
universal: one lock for every supported Python (3.11-3.13) and platform, split by markers.

- requirements.lock: what the pipeline runs with (`make run`);
- requirements-dev.lock: that plus the `dev`, `cluster` and `diffusers` extras (`make test`), resolved
  with requirements.lock as constraints, so the shared packages have the same versions.

torch is resolved (its version pins the packages it shares) but not written: its build
differs per machine (CPU index, PyPI, a user's CUDA build), and install_torch.py installs
it first. Each lock starts with the sha256 of what it was compiled from; tests/test_lock.py
fails when that no longer matches. Run `make lock` after changing a dependency.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"
LOCKS = {"requirements.lock": [], "requirements-dev.lock": ["dev", "cluster", "diffusers"]}
HEADER = "# inputs-sha256: "
UV = str(Path(sys.executable).with_name("uv"))  # the dev extra's uv, beside this interpreter
# Installed with torch from its own index, never from a lock (the CUDA runtime of PyPI's build).
TORCH_ONLY = re.compile(r"^(torch|triton|nvidia-[\w-]+|cuda-[\w-]+)==")


def inputs_sha256() -> str:
    """The hash of every dependency the locks are compiled from."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = sorted({extra for names in LOCKS.values() for extra in names})
    inputs = {
        "dependencies": project["dependencies"],
        "extras": {name: project["optional-dependencies"][name] for name in extras},
        "constraints": CONSTRAINTS.read_text(),
        "requires-python": project["requires-python"],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_sha256(lock: Path) -> str | None:
    first = lock.read_text().splitlines()[0] if lock.is_file() else ""
    return first[len(HEADER) :] if first.startswith(HEADER) else None


def uv_compile(extras: list[str], constraints: list[Path], options: list[str]) -> str:
    command = [UV, "pip", "compile", "pyproject.toml", "--universal", "--no-header", "--quiet"]
    command += [argument for extra in extras for argument in ("--extra", extra)]
    command += [argument for path in constraints for argument in ("-c", str(path))]
    locked = subprocess.run([*command, *options], cwd=ROOT, capture_output=True, text=True)
    if locked.returncode != 0:
        sys.exit(f"error: uv pip compile failed:\n{locked.stderr[-3000:]}")
    return locked.stdout


def torch_only_packages(extras: list[str], constraints: list[Path]) -> list[str]:
    """The names of torch and the packages only its PyPI build brings."""
    resolved = uv_compile(extras, constraints, [])
    return [line.split("==")[0] for line in resolved.splitlines() if TORCH_ONLY.match(line)]


def compile_lock(name: str, extras: list[str]) -> None:
    constraints = [CONSTRAINTS] + ([ROOT / "requirements.lock"] if name != "requirements.lock" else [])
    left_out = [
        argument for package in torch_only_packages(extras, constraints) for argument in ("--no-emit-package", package)
    ]
    locked = uv_compile(extras, constraints, ["--generate-hashes", *left_out])
    (ROOT / name).write_text(f"{HEADER}{inputs_sha256()}\n{locked}")


if __name__ == "__main__":
    for lock_name, lock_extras in LOCKS.items():
        compile_lock(lock_name, lock_extras)
        print(f"wrote {lock_name}")
