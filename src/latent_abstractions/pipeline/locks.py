"""One writer at a time.

A step holds a lock per step and experiment while it runs (``.locks/``): a second run of the
same step waits for nothing and touches nothing; it ends with one line naming the holder.
A Snakemake run holds the repository's DVC lock (``.dvc/tmp/lock``, the one `dvc repro`
takes) from before its first job to its end, so that the two engines never run at once in
one repository: each would delete the other's outputs before running its own job.
Locks are ``flock`` locks: the operating system releases them when the holder exits.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import TextIO

from ..core.errors import InputError

STEP_LOCKS = Path(".locks")
REPOSITORY_LOCK = Path(".dvc") / "tmp" / "lock"
DVC_STAGE_LOCK = Path(".dvc") / "tmp" / "rwlock"
_HELD: list[TextIO] = []  # open for the life of the process: closing a file releases its lock


def hold(path: Path, what: str) -> None:
    """Take the lock at ``path`` for this process, or one line naming its holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        named = f"pid {holder}" if holder.isdigit() else holder or "another process"
        raise InputError(f"{what} is in use by {named}: wait for it to end, or stop it; nothing was touched") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    _HELD.append(handle)


def hold_step(step: str, experiment: str | None = None) -> None:
    """The lock of one step for one experiment. Under torchrun the first rank holds it for all."""
    if os.environ.get("RANK", "0") != "0":
        return
    name = "@".join(filter(None, (step, experiment)))
    what = f"{step}{f' for experiment {experiment}' if experiment else ''}"
    hold(STEP_LOCKS / f"{re.sub(r'[^A-Za-z0-9_.@-]', '_', name)}.lock", what)


def hold_repository() -> None:
    """For a Snakemake run: the repository's DVC lock, and no `dvc repro` running (DVC lets
    go of its lock while a stage's command runs; its stage lock still names the process)."""
    hold(REPOSITORY_LOCK, "this repository (a dvc repro or another Snakemake run holds its lock)")
    running = _dvc_stage_holders()
    if running:
        raise InputError(
            f"this repository is in use by {running[0]}: wait for it to end, or stop it; nothing was touched"
        )


def _dvc_stage_holders() -> list[str]:
    """The live processes that DVC's stage lock (``.dvc/tmp/rwlock``) names."""
    try:
        table = json.loads(DVC_STAGE_LOCK.read_text())
    except (OSError, ValueError):
        return []
    holders = [entry for entry in table.get("write", {}).values()]
    holders += [entry for entries in table.get("read", {}).values() for entry in entries]
    return sorted({f"pid {entry['pid']} ({entry.get('cmd', 'dvc')})" for entry in holders if _alive(entry.get("pid"))})


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
