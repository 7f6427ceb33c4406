"""One writer at a time: Snakemake and `dvc repro` at once in one repository, and two runs
of one step, end with one line from the second and nothing lost from the first; an
override given to Snakemake is the config its jobs compute with."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from latent_abstractions.core.artifacts import PROVENANCE_KEY, params_sha256
from latent_abstractions.pipeline import params as params_module
from latent_abstractions.pipeline import stage_table

from test_pipeline import dvc, environment, git_repository, snakemake

pytestmark = pytest.mark.slow
TARGET = "data/bumps/model/weights.safetensors"
CHECKPOINTS = "data/bumps/model/checkpoints"
HOLD = (
    "import time; from latent_abstractions.pipeline import locks; locks.hold_step({module!r}, {experiment!r}); "
    "print('held', flush=True); time.sleep(60)"
)


def start(command: list[str], cwd: Path) -> subprocess.Popen:
    env = {**environment(), "PYTHONPATH": str(cwd / "src")}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: int = 600) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the first run never reached its job"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return git_repository(tmp_path_factory.mktemp("concurrency"))


def checkpoints(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / CHECKPOINTS).glob("*.safetensors"))


def test_dvc_started_while_snakemake_trains_refuses_and_loses_nothing(repo):
    first = start(snakemake("--cores", "1", TARGET), repo)
    wait_for(lambda: (repo / "logs" / "train_score_model" / "bumps.log").exists())
    code, said = finish(start(dvc("repro", "train_score_model@bumps"), repo))
    assert code != 0 and "Unable to acquire lock" in said
    code, said = finish(first)
    assert code == 0, said[-2000:]
    assert (repo / TARGET).is_file() and len(checkpoints(repo)) >= 2


def test_snakemake_started_while_dvc_trains_refuses_in_one_line_and_loses_nothing(repo):
    first = start(dvc("repro", "--force", "train_score_model@bumps"), repo)
    stage_lock = repo / ".dvc" / "tmp" / "rwlock"
    wait_for(lambda: stage_lock.is_file() and '"write"' in stage_lock.read_text())
    code, said = finish(start(snakemake("--cores", "1", "--forcerun", "train_score_model", TARGET), repo))
    assert code != 0 and "error: this repository is in use by pid" in said and "Traceback" not in said
    code, said = finish(first)
    assert code == 0, said[-2000:]
    assert (repo / TARGET).is_file() and len(checkpoints(repo)) >= 2


def files_under(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("entry", [*stage_table.STAGES, stage_table.REPORT], ids=lambda entry: entry.name)
def test_every_step_refuses_a_second_run_before_touching_anything(repo, entry):
    project = entry is stage_table.REPORT
    experiment = (
        None
        if project
        else next(iter(stage_table.experiments_of(entry, params_module.load(repo / "params.yaml"))), None)
    )
    if not project and experiment is None:
        pytest.skip(f"no experiment of the tests' params runs {entry.name}")
    hold = HOLD.format(module=entry.module, experiment=experiment)
    holder = start([sys.executable, "-c", hold], repo)
    assert holder.stdout.readline().strip() == "held"
    before = {**files_under(repo / "data"), **files_under(repo / "logs")}
    arguments = [] if project else ["--experiment", experiment]
    code, said = finish(start([sys.executable, "-m", f"latent_abstractions.stages.{entry.module}", *arguments], repo))
    holder.kill()
    assert (
        code == 1 and said.strip().splitlines()[-1].startswith("error: ") and f"in use by pid {holder.pid}" in said
    ), said
    assert {**files_under(repo / "data"), **files_under(repo / "logs")} == before


def test_a_second_run_of_a_step_refuses_naming_the_first(repo):
    holder = start(
        [sys.executable, "-c", HOLD.format(module="prepare_data", experiment="bumps")],
        repo,
    )
    assert holder.stdout.readline().strip() == "held"
    before = (repo / "data" / "bumps" / "dataset" / "factors.parquet").stat().st_mtime_ns
    second = start([sys.executable, "-m", "latent_abstractions.stages.prepare_data", "--experiment", "bumps"], repo)
    code, said = finish(second)
    holder.kill()
    lines = [line for line in said.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1 and f"in use by pid {holder.pid}" in lines[0], said
    assert (repo / "data" / "bumps" / "dataset" / "factors.parquet").stat().st_mtime_ns == before


def test_jobs_compute_with_the_override_snakemake_planned(repo, tmp_path):
    planned = yaml.safe_load((repo / "params.yaml").read_text())
    bumps = planned["experiments"]["bumps"]
    original_spacing = bumps["dataset"]["spacing_x"]
    bumps["dataset"]["spacing_x"] = 2 * original_spacing  # half the x positions
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(planned))
    code, said = finish(
        start(snakemake("--configfile", str(overlay), "--cores", "1", "data/bumps/dataset/factors.parquet"), repo)
    )
    assert code == 0, said[-2000:]
    made = json.loads(pq.read_schema(repo / "data" / "bumps" / "dataset" / "factors.parquet").metadata[PROVENANCE_KEY])
    validated = params_module.validate(planned)["experiments"]["bumps"]
    assert made["params"] == validated["dataset"] and made["params"]["spacing_x"] == 2 * original_spacing
    assert made["params_sha256"] == params_sha256(made["params"])
