"""Writing artifacts: atomically, and with provenance attached.

Every output is written under a temporary name beside its target and renamed
into place when complete, so an interrupted step never leaves a half-written
file that a later step (or Snakemake, or DVC) would take for a finished one.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import importlib.metadata
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from .code_closure import PACKAGE, code_sha256
from .errors import InputError
from .read_audit import announce

PROVENANCE_KEY = b"latent_abstractions.provenance"


class DiskFullError(OSError):
    """A write ran out of space; the message names the file being written."""


def is_disk_full(exc: BaseException) -> bool:
    # numpy, pyarrow and matplotlib raise OSError with errno set; some writers only
    # carry the operating system's message.
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)


@contextlib.contextmanager
def naming_full_disk(target: Path | str) -> Iterator[None]:
    """Turn any writer's out-of-space error into a DiskFullError naming ``target``."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, DiskFullError) or not is_disk_full(exc):
            raise
        raise DiskFullError(errno.ENOSPC, f"no space left on the device while writing {target}") from None


# Checks run before any output takes its place (cli.run_step adds one: the params file unchanged).
BEFORE_COMMIT: list[Callable[[Path], None]] = []


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    with naming_full_disk(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(handle)
        temporary = Path(temporary)
        try:
            yield temporary
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; outputs should look like any other file
            for check in BEFORE_COMMIT:
                check(target)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def file_sha256(path: Path | str) -> str:
    """sha256 of a file's bytes; a file unchanged since the last call (same size and
    mtime) is not read again, since inputs can be gigabytes and several artifacts cite them."""
    status = os.stat(path)
    return _file_sha256(str(path), status.st_size, status.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(value) -> str:
    """JSON with sorted keys: equal values give equal bytes, whatever the insertion order."""
    return json.dumps(value, sort_keys=True)


# Files a workflow engine puts into directory outputs (Snakemake marks their time with
# one); not part of the artifact, so they must not change the hashes that cite it.
ENGINE_FILES = frozenset({".snakemake_timestamp"})


def input_sha256(path: Path | str) -> str:
    """sha256 of a file, or of a directory: over its files' relative names and hashes, in
    order, engines' bookkeeping files aside."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file() and p.name not in ENGINE_FILES):
        digest.update(f"{member.relative_to(path).as_posix()}\0{file_sha256(member)}\0".encode())
    return digest.hexdigest()


def params_sha256(params: dict) -> str:
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()


def _git(*arguments: str) -> str | None:
    try:
        result = subprocess.run(["git", *arguments], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """The commit checked out, and whether tracked files differ from it (a dirty work tree)."""
    commit = _git("rev-parse", "HEAD")
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit or "unknown", "git_dirty": None if changes is None else bool(changes)}


def stage_code_sha256(step: str) -> str:
    """Hash of the code a step runs: the import closure of its stage module."""
    return code_sha256(f"{PACKAGE}.stages.{step}")


# The lock files `make install` installs from, and the packages whose version shows in
# an artifact's bytes (a figure under another matplotlib, a table under another pyarrow).
LOCK_FILES = ("requirements.lock", "requirements-dev.lock")
RECORDED_PACKAGES = ("torch", "numpy", "pyarrow", "matplotlib", "snakemake", "dvc")


def software() -> dict:
    """The locks' sha256 in the working directory (None where absent: run outside the
    repository root) and the installed versions of RECORDED_PACKAGES."""
    return {
        "locks": {name: file_sha256(name) if Path(name).is_file() else None for name in LOCK_FILES},
        "versions": dict(_installed_versions()),
    }


@functools.cache
def _installed_versions() -> tuple[tuple[str, str | None], ...]:
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return tuple((package, version(package)) for package in RECORDED_PACKAGES)


def provenance(step: str, experiment: str, params: dict, inputs: list[Path | str]) -> dict:
    """What made an artifact: the step, its params, its inputs' hashes, the code and the
    software that ran."""
    return {
        "step": step,
        "experiment": experiment,
        "params_sha256": params_sha256(params),
        "params": params,
        "inputs": {str(path): input_sha256(path) for path in inputs},
        "code_sha256": stage_code_sha256(step),
        "package_version": __version__,
        "software": software(),
        **git_state(),
    }


def write_parquet(table: pa.Table, target: Path | str, meta: dict) -> None:
    """Write ``table`` atomically with ``meta`` (JSON) in the Parquet schema metadata."""
    existing = table.schema.metadata or {}
    table = table.replace_schema_metadata({**existing, PROVENANCE_KEY: canonical_json(meta).encode()})
    with atomic_path(target) as temporary:
        pq.write_table(table, temporary)


def write_json(value, target: Path | str) -> None:
    """``value`` as sorted JSON (one line and a newline), written atomically: metrics files."""
    with atomic_path(target) as temporary:
        temporary.write_text(canonical_json(value) + "\n")


def write_series_csv(frame, x: str, series: list[str], value: str, target: Path | str) -> None:
    """A long table for `dvc plots` (the ``series`` template): columns ``x``, ``series``
    (the named columns joined by a space) and ``value``, written atomically."""
    table = frame[[x]].copy()
    table["series"] = frame[series].astype(str).agg(" ".join, axis=1)
    table["value"] = frame[value]
    with atomic_path(target) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")


def read_input_table(path: Path | str) -> pa.Table:
    """A stage's input table, or one line naming the file that is missing or unreadable."""
    if not Path(path).is_file():
        raise InputError(f"input table missing: {path} (run the stage that writes it first)")
    try:
        announce(path)
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable Parquet table ({exc})") from None
