"""What every pipeline step shares: arguments, params, logging, one-line errors.

A step is ``python -m latent_abstractions.stages.<step> --experiment NAME``; it reads
params.yaml from the working directory (the repository root under Snakemake
and DVC alike), validates it, and logs to stderr and logs/<step>/<NAME>.log.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from ..core import progress, read_audit
from ..core.artifacts import BEFORE_COMMIT, DiskFullError, is_disk_full
from ..core.errors import InputError, TrainingDiverged
from . import budgets, locks
from . import params as params_module


def run_step(
    step: str,
    body: Callable[..., None],
    argv: list[str] | None = None,
) -> None:
    """Parse the command line, validate params, then call ``body(experiment, experiment_params)``.

    Bad params or inputs end the process with one line on stderr and exit status 1,
    before the step writes anything.
    """
    parser = argparse.ArgumentParser(prog=f"python -m latent_abstractions.stages.{step}")
    parser.add_argument("--experiment", required=True, help="experiment name in params.yaml")
    parser.add_argument("--params", default=default_params(), help=PARAMS_HELP)
    parser.add_argument("--log", help=f"log file (default: logs/{step}/<experiment>.log)")
    args = parser.parse_args(argv)
    try:
        experiment_params = params_module.experiment(params_module.load_or_exit(args.params), args.experiment)
    except params_module.ParamsError as exc:
        sys.exit(f"error: {exc}")
    log_path = Path(args.log or f"logs/{step}/{args.experiment}.log")
    read_audit.start(f"{log_path.parent.name}@{args.experiment}")  # the stage's name is its log folder's
    what = f"{step} for experiment {args.experiment}"
    with one_line_errors(what, log_path):
        check_environment(args.experiment)
        budgets.check(step, experiment_params, args.experiment)
        locks.hold_step(step, args.experiment)
        _setup_logging(log_path)  # after the lock: a refused second run leaves the first's log as it is
        with params_unchanged(Path(args.params)):
            body(args.experiment, experiment_params)


def run_project_step(step: str, body: Callable[[dict], None], argv: list[str] | None = None) -> None:
    """As :func:`run_step`, for a step over the whole project: ``body(params)``."""
    parser = argparse.ArgumentParser(prog=f"python -m latent_abstractions.stages.{step}")
    parser.add_argument("--params", default=default_params(), help=PARAMS_HELP)
    parser.add_argument("--log", default=f"logs/{step}.log", help=f"log file (default: logs/{step}.log)")
    args = parser.parse_args(argv)
    params = params_module.load_or_exit(args.params)
    read_audit.start(step)
    with one_line_errors(step, Path(args.log)):
        locks.hold_step(step)
        _setup_logging(Path(args.log))
        with params_unchanged(Path(args.params)):
            body(params)


# Snakemake sets this to the config it planned with (workflow/rules/common.smk), so that
# every job computes with exactly that config, overrides included.
PLANNED_PARAMS = "LATENT_ABSTRACTIONS_PARAMS"
PARAMS_HELP = f"params file (default: ${PLANNED_PARAMS} when Snakemake sets it, else params.yaml)"


def default_params() -> str:
    """The planned config when Snakemake set one that is there; else params.yaml (a variable
    left over from another working directory names no file here)."""
    planned = os.environ.get(PLANNED_PARAMS)
    return planned if planned and Path(planned).is_file() else "params.yaml"


@contextlib.contextmanager
def params_unchanged(path: Path) -> Iterator[None]:
    """While the step runs: a check that ``path`` still holds the params it started with,
    before every output takes its place and at the end. A step whose params changed while
    it ran fails, so no engine records params that did not make its outputs."""
    path = path.resolve()
    started_with = _digest(path)

    def unchanged(target: Path | None = None) -> None:
        if _digest(path) != started_with:
            what = f"{target} is not written" if target else "the step fails"
            raise InputError(
                f"{path.name} changed while the step ran: {what}, so that no engine records params "
                "that did not make it; run it again"
            )

    BEFORE_COMMIT.append(unchanged)
    try:
        yield
        unchanged()
    finally:
        BEFORE_COMMIT.remove(unchanged)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


@contextlib.contextmanager
def one_line_errors(what: str, log_path: Path | None = None) -> Iterator[None]:
    """Every failure ends the step with one line and exit status 1. Outputs are written
    atomically, so those already in place are untouched by a failed write. A failure of no
    known class says so and points at the log, which holds the traceback."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        line = describe(what, exc)
        if line is None:
            _traceback_to_log(exc)
            where = f"; the traceback is in {log_path}" if log_path else ""
            line = f"{what} failed unexpectedly ({type(exc).__name__}: {_first_line(exc)}){where}"
        sys.exit(f"error: {line}")


def describe(what: str, exc: BaseException) -> str | None:
    """One line for a failure of a known class, naming the file or key; None otherwise."""
    if isinstance(exc, (InputError, params_module.ParamsError, TrainingDiverged)):
        return _first_line(exc)
    if is_disk_full(exc):
        where = exc.strerror if isinstance(exc, DiskFullError) else "no space left on the device"
        return f"{what}: {where}; outputs already in place are untouched"
    if isinstance(exc, MemoryError):
        return f"{what}: out of memory; lower the sizes in params.yaml (the keys that set the arrays' shapes) or free memory"
    if isinstance(exc, PermissionError):
        return f"{what}: permission denied on {exc.filename}: make it writable or run where you may write"
    if isinstance(exc, OSError):
        named = f" on {exc.filename}" if exc.filename else ""
        return f"{what}: {exc.strerror or _first_line(exc)}{named}"
    if isinstance(exc, json.JSONDecodeError):
        return f"{what}: malformed JSON ({exc.msg}, line {exc.lineno}); make the file again with its stage"
    if isinstance(exc, pa.ArrowException):
        return f"{what}: unreadable table ({_first_line(exc)}); make it again with its stage"
    if isinstance(exc, KeyError):
        return f"{what}: a table or file lacks the key {exc}; make it again with its stage"
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def _traceback_to_log(exc: BaseException) -> None:
    """The traceback into the log file only, not the terminal."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            record = logging.LogRecord(
                "cli", logging.ERROR, __file__, 0, "unexpected failure", None, (type(exc), exc, exc.__traceback__)
            )
            handler.handle(record)


def check_environment(experiment: str | None = None) -> None:
    """Faults of the working tree that would otherwise surface deep in a step."""
    folder = Path("data") / experiment if experiment else None
    if folder is not None and folder.is_symlink() and not folder.exists():
        raise InputError(
            f"{folder} is a symbolic link to {os.readlink(folder)}, which does not exist: remove or mend it"
        )


def _setup_logging(log_path: Path) -> None:
    """Log to stderr and ``log_path``; the progress lines go to the file only (the terminal
    has the progress bar)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    terminal = logging.StreamHandler(sys.stderr)
    terminal.addFilter(lambda record: record.name != progress.LOGGER)
    handlers = [terminal, logging.FileHandler(log_path, mode="w")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=handlers, force=True)
