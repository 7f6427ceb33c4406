"""What every pipeline step shares: arguments, params, logging, one-line errors.

A step is ``python -m latent_abstractions.<step> --experiment NAME``; it reads
params.yaml from the working directory (the repository root under Snakemake
and DVC alike), validates it, and logs to stderr and logs/<step>/<NAME>.log.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

from . import params as params_module


class InputError(ValueError):
    """An input file (dataset, checkpoint, table) is missing or malformed."""


def run_step(step: str, body: Callable[..., None], argv: list[str] | None = None,
             options: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Parse the command line, validate params, then call ``body(experiment, experiment_params)``
    (plus the parsed arguments as keywords when ``options`` adds any to the parser).

    Bad params or inputs end the process with one line on stderr and exit code 2,
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
    try:
        body(args.experiment, experiment_params, **extra)
    except (InputError, params_module.ParamsError) as exc:
        sys.exit(f"error: {exc}")


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
    try:
        body(params)
    except (InputError, params_module.ParamsError) as exc:
        sys.exit(f"error: {exc}")


def _setup_logging(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.StreamHandler(sys.stderr), logging.FileHandler(log_path, mode="w")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=handlers, force=True)
