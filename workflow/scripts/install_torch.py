"""Install torch into the running interpreter's environment, before the lock (`make install`).

The lock leaves torch out because its build differs per machine. This picks, and says in
one line which it took:
- a torch already installed (a GPU user's CUDA build, or an earlier install) is kept;
- on Linux, the CPU build from PyTorch's CPU wheel index when that index can be reached,
  otherwise PyPI's build (which carries CUDA on Linux: a few GB);
- on macOS and elsewhere, PyPI's build (Apple silicon: the MPS backend is in it).
The version is constraints.txt's pin, which every lock is resolved against.
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SUPPORTED_PYTHONS = ((3, 11), (3, 13))  # pyproject's requires-python: snakemake 9 needs 3.11


def pinned_torch() -> str:
    text = (ROOT / "constraints.txt").read_text()
    return re.search(r"^torch==(\S+)", text, re.MULTILINE).group(1)


def installed_torch() -> str | None:
    found = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    )
    return found.stdout.strip() if found.returncode == 0 else None


def reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/torch/", timeout=timeout):
            return True
    except OSError:
        return False


def torch_index(system: str, cpu_index_reachable: bool) -> str | None:
    """The index to take torch from: PyTorch's CPU index on Linux where reachable, else
    None (pip's own configuration: PyPI)."""
    return CPU_INDEX if system == "Linux" and cpu_index_reachable else None


def where() -> str:
    return f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"


def main() -> int:
    if not SUPPORTED_PYTHONS[0] <= sys.version_info[:2] <= SUPPORTED_PYTHONS[1]:
        print(f"error: {where()}: this project supports Python 3.11 to 3.13 (snakemake 9 needs 3.11)", file=sys.stderr)
        return 1
    kept = installed_torch()
    if kept:
        print(f"torch {kept} already installed: kept")
        return 0
    version = pinned_torch()
    index = torch_index(platform.system(), platform.system() == "Linux" and reachable(CPU_INDEX))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"torch=={version}"]
    command += ["--index-url", index] if index else []
    installed = subprocess.run(command, capture_output=True, text=True)
    if installed.returncode != 0:
        said = installed.stderr.strip().splitlines()
        reason = next(
            (line for line in reversed(said) if line.startswith("ERROR:")), said[-1] if said else "pip failed"
        )
        print(f"error: no torch {version} for {where()} from {index or 'PyPI'}: {reason}", file=sys.stderr)
        return 1
    source = "PyTorch's CPU wheel index" if index else "PyPI"
    source += " (PyTorch's CPU wheel index is unreachable)" if platform.system() == "Linux" and not index else ""
    print(f"torch {installed_torch()} installed from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
