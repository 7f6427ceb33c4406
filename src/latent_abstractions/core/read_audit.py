"""Which files under data/ a stage run reads, for the test that holds every stage to the
inputs its stage-table entry declares.

An audit hook (``sys.addaudithook``) sees Python's ``open``; pyarrow and safetensors open
files in native code, which raises no such event, so this package's readers announce those
files with :func:`announce`. Set ``$LATENT_ABSTRACTIONS_READ_AUDIT`` to a folder and each
stage run writes there ``<stage>@<experiment>.reads``: the files under data/ it read, one
per line. Unset (always, outside that test), nothing is hooked.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

AUDIT_VARIABLE = "LATENT_ABSTRACTIONS_READ_AUDIT"
EVENT = "latent_abstractions.read"
DATA = "data"


def announce(path: os.PathLike | str) -> None:
    """Tell the audit (if any) that ``path`` is read by native code."""
    sys.audit(EVENT, os.fspath(path))


def _is_read(args: tuple) -> bool:
    """Whether an ``open`` event's (path, mode, flags) opens an existing file for reading."""
    path, mode, flags = args
    if isinstance(path, int):  # an open file descriptor: its file was seen when opened
        return False
    if isinstance(mode, str):
        return "r" in mode
    return not flags & (os.O_CREAT | os.O_WRONLY)


def start(job: str) -> None:
    """Record this process's reads under data/ for ``job`` (``<stage>@<experiment>``), if asked."""
    folder = os.environ.get(AUDIT_VARIABLE)
    if not folder:
        return
    root, reads = Path.cwd(), set()

    def hook(event: str, args: tuple) -> None:
        if event == EVENT or (event == "open" and _is_read(args)):
            relative = os.path.relpath(os.path.abspath(os.fsdecode(args[0])), root)
            if relative.split(os.sep)[0] == DATA:
                reads.add(Path(relative).as_posix())

    sys.addaudithook(hook)
    atexit.register(_write, Path(folder), job, reads)


def _write(folder: Path, job: str, reads: set[str]) -> None:
    (folder / f"{job}.reads").write_text("".join(f"{path}\n" for path in sorted(reads)))
