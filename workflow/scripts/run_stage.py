"""Run one pipeline stage with the interpreter of the environment that launched the engine.

    python3 workflow/scripts/run_stage.py STAGE_MODULE --experiment NAME [...]

becomes ``<interpreter> -m latent_abstractions.stages.STAGE_MODULE --experiment NAME [...]``.
Snakemake and DVC run each job through a shell, where ``python`` is whatever the
PATH offers: without an activated environment that is a Python without the package,
and the job fails with nothing useful in its log. This launcher (standard library
only) picks, in order, the first interpreter that can import the package and its
dependencies:

1. ``$LATENT_ABSTRACTIONS_PYTHON``: the Snakefile sets it to the interpreter running
   Snakemake, and cluster jobs inherit it;
2. the interpreter of the engine that started this job, found by walking up the
   parent processes (``dvc repro`` started as ``.venv/bin/dvc`` without activating);
3. the interpreter running this script (an activated environment);
and otherwise stops with one line saying what to do.

It also fixes the number of CPU threads the stage computes with
(``$LATENT_ABSTRACTIONS_CPU_THREADS``, default 1): floating-point sums depend on how
they are split across threads, so a run under Snakemake (which sets one thread per job)
and one under DVC (which would use every core) give byte-identical artifacts only with
the same count. Raise it on a large CPU node, at the price of comparing only runs that
used the same value. Numba's threads (UMAP's) follow it too: left at one per core, they
spin against the job on the other core and slow both several times over.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGE = "latent_abstractions"
PROBE = f"{PACKAGE}.core.artifacts"  # imports the package's dependencies (pyarrow), not only its name


def can_import_package(python: str) -> bool:
    # Compared unresolved: a virtual environment's interpreter links to the base one.
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        try:
            __import__(PROBE)
        except ImportError:
            return False
        return True
    probe = subprocess.run([python, "-c", f"import {PROBE}"], capture_output=True, timeout=60)
    return probe.returncode == 0


def ancestor_interpreters() -> list[str]:
    """Python executables of the parent processes, nearest first (Linux /proc)."""
    found, pid = [], os.getppid()
    while pid > 1:
        proc = Path("/proc") / str(pid)
        try:
            executable = os.readlink(proc / "exe")
            status = (proc / "status").read_text()
        except OSError:
            break
        if Path(executable).name.startswith("python"):
            arguments = (proc / "cmdline").read_bytes().split(b"\0")
            # A venv's interpreter resolves to the base one; the command line keeps the venv path.
            launched_as = arguments[0].decode() if arguments and arguments[0] else executable
            found.append(launched_as if "/" in launched_as else executable)
        ppid = [line.split()[1] for line in status.splitlines() if line.startswith("PPid:")]
        pid = int(ppid[0]) if ppid else 0
    return found


def candidates() -> list[str]:
    chosen = [os.environ.get("LATENT_ABSTRACTIONS_PYTHON", ""), *ancestor_interpreters(), sys.executable]
    return [c for c in dict.fromkeys(chosen) if c and os.access(c, os.X_OK)]


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        sys.exit("usage: run_stage.py STAGE_MODULE --experiment NAME [...]")
    threads = os.environ.get("LATENT_ABSTRACTIONS_CPU_THREADS", "1")
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[variable] = threads
    # On Apple's MPS an op that backend lacks runs on the CPU; torch reads this when it loads.
    os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    for python in candidates():
        if can_import_package(python):
            os.execv(python, [python, "-m", f"{PACKAGE}.stages.{argv[0]}", *argv[1:]])
    sys.exit(
        f"error: no Python environment with {PACKAGE} installed launched this job; "
        f"activate it first (source .venv/bin/activate) or set LATENT_ABSTRACTIONS_PYTHON"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
