"""The Snakefile and dvc.yaml describe the same DAG: stage names, commands, deps,
outs and params, job by job, for every experiment in params.yaml; both come from
the stage table, and dvc.yaml is current with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc.repo import Repo
from snakemake.api import SnakemakeApi
from snakemake.settings import types as settings

from latent_abstractions.pipeline import dvc_yaml, stage_table

from conftest import ROOT


def snakemake_jobs() -> dict[str, dict]:
    """Every job of the forced full DAG, keyed as DVC names stages (`rule@experiment`)."""
    with SnakemakeApi(settings.OutputSettings()) as api:
        workflow_api = api.workflow(
            resource_settings=settings.ResourceSettings(cores=1), snakefile=ROOT / "Snakefile", workdir=ROOT
        )
        workflow_api.dag(dag_settings=settings.DAGSettings(forceall=True))
        # The public API prints the DAG but does not return it; build it the way printdag does.
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        jobs = {}
        for job in workflow.dag.jobs:
            if job.rule.name == "all":
                continue
            experiment = job.wildcards.get("experiment")
            name = f"{job.rule.name}@{experiment}" if experiment else job.rule.name  # a project stage has none
            jobs[name] = {
                "cmd": job.shellcmd.strip(),
                "deps": sorted(job.input),
                "outs": sorted(job.output),
                # `command` is the job's shell command (compared as cmd), carried as a param so that
                # the rules can be made in a loop (workflow/rules/stages.smk)
                "params": sorted(f"experiments.{experiment}.{name}" for name in job.params.keys() if name != "command"),
            }
        return jobs


def dvc_stages() -> dict[str, dict]:
    stages = {}
    for stage in Repo(str(ROOT)).index.stages:
        params = [key for dep in stage.deps if hasattr(dep, "params") and dep.params for key in dep.params]
        stages[stage.name] = {
            "cmd": stage.cmd.strip(),
            "deps": sorted(dep.def_path for dep in stage.deps if not hasattr(dep, "params") or dep.params is None),
            "outs": sorted(out.def_path for out in stage.outs),
            "params": sorted(params),
        }
    return stages


@pytest.fixture(scope="module")
def both():
    return snakemake_jobs(), dvc_stages()


def test_committed_dvc_yaml_is_current(default_params):
    assert (ROOT / "dvc.yaml").read_text() == dvc_yaml.render(default_params), "run `make dvc.yaml`"


def test_same_stages(both, default_params):
    snakemake, dvc = both
    assert sorted(snakemake) == sorted(dvc)
    expected = {
        f"{entry.name}@{name}"
        for entry in stage_table.STAGES
        for name in stage_table.experiments_of(entry, default_params)
    }
    assert set(dvc) == expected | {stage_table.REPORT.name}


@pytest.mark.parametrize("field", ["cmd", "deps", "outs", "params"])
def test_same_field(both, field):
    snakemake, dvc = both
    for name in dvc:
        assert snakemake[name][field] == dvc[name][field], f"{name}: {field} differs"


def test_every_dependency_is_made_or_tracked(both):
    """Each dep is either a source file in git or an out of another stage."""
    _, dvc = both
    produced = {out for stage in dvc.values() for out in stage["outs"]}
    for name, stage in dvc.items():
        for dep in stage["deps"]:
            assert dep in produced or (Path(ROOT) / dep).is_file(), f"{name}: {dep} is neither made nor present"
