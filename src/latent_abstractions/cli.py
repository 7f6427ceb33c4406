"""What every pipeline step shares: arguments, params, logging, one-line errors.

A step is ``python -m latent_abstractions.<step> --experiment NAME``; it reads
params.yaml from the working directory (the repository root under Snakemake
and DVC alike), validates it, and logs to stderr and logs/<step>/<NAME>.log.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from . import params as params_module
from .artifacts import DiskFullError, is_disk_full
from .errors import InputError, TrainingDiverged


def run_step(
    step: str,
    body: Callable[..., None],
    argv: list[str] | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse the command line, validate params, then call ``body(experiment, experiment_params)``
    (plus the parsed arguments as keywords when ``options`` adds any to the parser).

    Bad params or inputs end the process with one line on stderr and exit status 1,
    before the step writes anything.
    """
    parser = argparse.ArgumentParser(prog=f"python -m latent_abstractions.stages.{step}")
    parser.add_argument("--experiment", required=True, help="experiment name in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--log", help=f"log file (default: logs/{step}/<experiment>.log)")
    if options:
        options(parser)
    args = parser.parse_args(argv)
    extra = {key: value for key, value in vars(args).items() if key not in ("experiment", "params", "log")}
    try:
        experiment_params = params_module.experiment(params_module.load(args.params), args.experiment)
    except params_module.ParamsError as exc:
        sys.exit(f"error: {exc}")
    _setup_logging(Path(args.log or f"logs/{step}/{args.experiment}.log"))
    with one_line_errors(f"{step} for experiment {args.experiment}"):
        body(args.experiment, experiment_params, **extra)


def run_project_step(step: str, body: Callable[[dict], None], argv: list[str] | None = None) -> None:
    """As :func:`run_step`, for a step over the whole project: ``body(params)``."""
    parser = argparse.ArgumentParser(prog=f"python -m latent_abstractions.stages.{step}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--log", default=f"logs/{step}.log", help=f"log file (default: logs/{step}.log)")
    args = parser.parse_args(argv)
    try:
        params = params_module.load(args.params)
    except params_module.ParamsError as exc:
        sys.exit(f"error: {exc}")
    _setup_logging(Path(args.log))
    with one_line_errors(step):
        body(params)


@contextlib.contextmanager
def one_line_errors(what: str) -> Iterator[None]:
    """Bad inputs and a full disk end the step with one line and exit status 1. Outputs
    are written atomically, so those already in place are untouched by a failed write."""
    try:
        yield
    except (InputError, params_module.ParamsError, TrainingDiverged) as exc:
        sys.exit(f"error: {exc}")
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        where = exc.strerror if isinstance(exc, DiskFullError) else "no space left on the device"
        sys.exit(f"error: {what}: {where}; outputs already in place are untouched")


def _setup_logging(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.StreamHandler(sys.stderr), logging.FileHandler(log_path, mode="w")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=handlers, force=True)
