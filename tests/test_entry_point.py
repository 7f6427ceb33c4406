"""The `latent-abstractions` command works from any directory: it finds the project root
(or takes --root), and every mistake is one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from latent_abstractions import __version__

from conftest import ROOT

COMMAND = str(Path(sys.executable).with_name("latent-abstractions"))


def call(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, *arguments], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_and_version_work_from_another_directory(tmp_path):
    helped = call("--help", cwd=tmp_path)
    assert helped.returncode == 0 and all(name in helped.stdout for name in ("run", "stage", "verify", "findings"))
    for sub in ("run", "stage", "verify", "findings"):
        assert call(sub, "--help", cwd=tmp_path).returncode == 0
    assert call("--version", cwd=tmp_path).stdout.strip() == f"latent-abstractions {__version__}"


def project(folder: Path, findings: str | None) -> Path:
    folder.mkdir(parents=True)
    for name in ("Snakefile", "params.yaml"):
        (folder / name).write_text("")
    if findings is not None:
        (folder / "data").mkdir()
        (folder / "data" / "findings.md").write_text(findings)
    return folder


def test_findings_prints_the_findings_of_the_root_found_above_or_given(tmp_path):
    root = project(tmp_path / "project", "# Findings\n- x before y\n")
    (root / "deep" / "er").mkdir(parents=True)
    assert call("findings", cwd=root / "deep" / "er").stdout == "# Findings\n- x before y\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert call("--root", str(root), "findings", cwd=elsewhere).stdout == "# Findings\n- x before y\n"


def test_mistakes_are_one_line_each(tmp_path):
    empty = project(tmp_path / "empty", None)
    cases = {
        ("findings",): "data/findings.md is not there yet",
        ("stage", "nope"): "no stage 'nope'; the stages are: prepare_data",
        ("stage", "train_score_model"): "needs --experiment NAME",
        ("--root", str(tmp_path), "findings"): "holds no Snakefile and params.yaml",
        ("run", "--profile", "laptop"): "no profile 'laptop'",
    }
    for arguments, message in cases.items():
        answered = call(*arguments, cwd=empty)
        assert answered.returncode != 0 and answered.stderr.count("\n") == 1 and message in answered.stderr, (
            answered.stderr
        )


def test_the_installed_repository_is_the_root_when_none_is_above(tmp_path):
    # tmp_path has no Snakefile above it; the editable install's repository is found instead.
    answered = call("stage", "nope", cwd=tmp_path)
    assert "no stage 'nope'" in answered.stderr
    assert (ROOT / "Snakefile").is_file()


def test_stage_runs_the_engines_command_through_the_launcher():
    # The stage itself answers: the launcher and the stage's module were found and started.
    answered = call("stage", "prepare_data", "--experiment", "no_such_experiment", cwd=ROOT)
    assert answered.returncode != 0 and "Traceback" not in answered.stderr, answered.stderr
    assert "unknown experiment 'no_such_experiment'" in answered.stderr


def test_python_dash_m_is_the_same_command(tmp_path):
    answered = subprocess.run(
        [sys.executable, "-m", "latent_abstractions", "--version"], capture_output=True, text=True, cwd=tmp_path
    )
    assert answered.stdout.strip() == f"latent-abstractions {__version__}"


def test_run_passes_snakemakes_own_options_on(tmp_path):
    root = project(tmp_path / "project", None)
    (root / "workflow" / "profiles" / "default").mkdir(parents=True)
    (root / "workflow" / "profiles" / "default" / "config.yaml").write_text("printshellcmds: true\n")
    answered = call("run", "--version", cwd=root)  # not the command's own --version: Snakemake's
    assert answered.returncode == 0 and answered.stdout.strip()[0].isdigit(), answered.stderr
    refused = call("findings", "-n", cwd=root)
    assert refused.returncode == 2 and "unrecognized arguments: -n" in refused.stderr


def test_a_name_that_is_no_experiment_name_is_one_line(tmp_path):
    empty = project(tmp_path / "empty", None)
    answered = call("stage", "train_score_model", "--experiment", "it's", cwd=empty)
    assert answered.returncode != 0 and answered.stderr.count("\n") == 1
    assert '"it\'s" is not an experiment name' in answered.stderr
