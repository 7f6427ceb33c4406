"""The ecosystem's habits, checked in `make test`: ruff (lint and format) over the Python,
snakefmt over the Snakefile and rules, and `snakemake --lint`, which may only ask for a
conda environment or container per rule (docs/install.md, "Software environment and style")."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BIN = Path(sys.executable).parent
PYTHON_TREES = ["src", "tests", "benchmarks", "workflow/scripts"]
CONDA_LINT = "Specify a conda environment or container for each rule."


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing_to_fix():
    result = run(str(BIN / "ruff"), "check", "--no-cache", *PYTHON_TREES)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_python_is_formatted_as_ruff_formats_it():
    result = run(str(BIN / "ruff"), "format", "--check", "--no-cache", *PYTHON_TREES)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_snakefile_and_rules_are_formatted_as_snakefmt_formats_them():
    result = run(str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules")
    assert result.returncode == 0, result.stderr[-3000:]


def test_snakemake_lint_asks_only_for_conda_environments():
    result = run(str(BIN / "snakemake"), "--lint")
    lints = set(re.findall(r"^\s+\* (.+?):$", result.stdout + result.stderr, flags=re.MULTILINE))
    assert lints == {CONDA_LINT}, lints
