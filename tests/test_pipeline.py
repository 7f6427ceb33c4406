"""The whole smoke pipeline, run the way users run it: `snakemake` in a copy of the
repository, and `dvc repro` in a fresh git repository made from it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from latent_abstractions.artifacts import read_provenance
from conftest import ROOT

pytestmark = pytest.mark.slow

FIGURES = ["probes", "information", "samples", "loss", "dataset_contact_sheet", "dataset_traversals"]
PIPELINE_TIMEOUT_S = 900  # hard kill: a hung scheduler must not hang the suite


def environment() -> dict:
    """PATH with this interpreter's bin first, so `python`, `snakemake` and `dvc` are the venv's."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True,
                            timeout=PIPELINE_TIMEOUT_S)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def copy_repository(target: Path) -> Path:
    """The files git knows about (tracked, or untracked but not ignored): no data, no venv."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def experiments() -> list[str]:
    with open(ROOT / "params.yaml") as handle:
        return sorted(yaml.safe_load(handle)["experiments"])


def check_outputs(repo: Path) -> None:
    for experiment in experiments():
        for figure in FIGURES:
            png = repo / "data" / experiment / "figures" / f"{figure}.png"
            with Image.open(png) as image:
                provenance = json.loads(image.text["provenance"])
            assert provenance["step"] == "figures" and provenance["inputs"], png
        factors = pq.read_table(repo / "data" / experiment / "dataset" / "factors.parquet").column_names
        probes = pq.read_table(repo / "data" / experiment / "probes.parquet").to_pandas()
        assert {f"{name}_bin" for name in probes["factor"]} <= set(factors) and probes["score"].notna().all()
        made_from = read_provenance(repo / "data" / experiment / "trajectories.parquet")
        assert list(made_from["inputs"]) == [f"data/{experiment}/model/weights.safetensors"]
        assert made_from["step"] == "sample_trajectories" and len(made_from["params_sha256"]) == 64
        info = pq.read_table(repo / "data" / experiment / "information.parquet").to_pandas()
        assert set(info["estimator"]) == {"score_difference", "exact"}
        assert (info["mi_nats"] >= -1e-9).all()


@pytest.fixture(scope="module")
def snakemake_repo(tmp_path_factory):
    repo = copy_repository(tmp_path_factory.mktemp("snakemake"))
    run(["snakemake", "--cores", "2", "--workflow-profile", "workflow/profiles/default"], repo)
    return repo


def test_snakemake_runs_the_whole_pipeline(snakemake_repo):
    check_outputs(snakemake_repo)
    logs = list((snakemake_repo / "logs").glob("*/*.log"))
    assert len(logs) == 6 * len(experiments())


def test_second_snakemake_run_schedules_nothing(snakemake_repo):
    result = run(["snakemake", "--cores", "2", "--workflow-profile", "workflow/profiles/default"], snakemake_repo)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_snakemake_stops_on_bad_params_before_any_job(tmp_path):
    repo = copy_repository(tmp_path)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["experiments"]["bumps"]["dataset"]["height"] = -2
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(["snakemake", "--cores", "1"], cwd=repo, env=environment(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "error: params.yaml: experiments.bumps.dataset.height = -2: must be >= 4" in result.stderr
    assert not (repo / "data" / "bumps").exists()


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory):
    repo = copy_repository(tmp_path_factory.mktemp("dvc"))
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm", "init"]):
        run(command, repo)
    run(["dvc", "repro"], repo)
    return repo


def test_dvc_repro_runs_the_whole_pipeline(dvc_repo):
    check_outputs(dvc_repo)


def test_dvc_lock_hashes_every_input_of_every_figure(dvc_repo):
    lock = yaml.safe_load((dvc_repo / "dvc.lock").read_text())["stages"]
    stages = yaml.safe_load((dvc_repo / "dvc.yaml").read_text())["stages"]
    produced_by = {out["path"]: name for name, entry in lock.items() for out in entry.get("outs", [])}

    def hashed(entry: dict) -> bool:
        """An md5 of a file, or of a directory's listing (`<md5>.dir`)."""
        return re.fullmatch(r"[0-9a-f]{32}(\.dir)?", entry.get("md5", "")) is not None

    def hashed_ancestry(stage_name: str) -> set[str]:
        """Every file upstream of a stage, each checked to carry an md5 in dvc.lock."""
        entry = lock[stage_name]
        seen = set()
        for dep in entry["deps"]:
            assert hashed(dep), f"{stage_name}: {dep['path']} has no md5"
            seen.add(dep["path"])
            if dep["path"] in produced_by:
                seen |= hashed_ancestry(produced_by[dep["path"]])
        for out in entry["outs"]:
            assert hashed(out), f"{stage_name}: {out['path']} has no md5"
        for values in entry.get("params", {}).values():
            assert values, f"{stage_name}: params recorded empty"
        return seen

    for experiment in experiments():
        ancestry = hashed_ancestry(f"figures@{experiment}")
        assert f"data/{experiment}/dataset/images.npy" in ancestry
        assert f"data/{experiment}/model/weights.safetensors" in ancestry
        assert "src/latent_abstractions/train.py" in ancestry
        figure_outs = {out["path"] for out in lock[f"figures@{experiment}"]["outs"]}
        assert figure_outs == {f"data/{experiment}/figures/{name}.png" for name in FIGURES}
    assert set(stages) == {name.split("@")[0] for name in lock}


def test_dvc_status_is_clean_after_repro(dvc_repo):
    result = run(["dvc", "status"], dvc_repo)
    assert "Data and pipelines are up to date" in result.stdout


def test_snakemake_accepts_what_dvc_made(dvc_repo):
    """Outputs DVC wrote (and cached) count as up to date for Snakemake too."""
    result = run(["snakemake", "--cores", "1", "--dry-run"], dvc_repo)
    assert "Nothing to be done" in result.stdout + result.stderr
