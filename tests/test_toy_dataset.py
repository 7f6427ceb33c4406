"""Adding a data set is one module (tests/toy/toy_dataset.py, copied into the package's
datasets/ folder) and this test: the registry finds it, the params schema takes its
section, and the pipeline runs it from data to report on the CI params."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from latent_abstractions.core.errors import InputError
from latent_abstractions.datasets import registry
from latent_abstractions.pipeline import params

from conftest import CI_PARAMS
from test_pipeline import git_repository, run, snakemake

TOY = Path(__file__).with_name("toy") / "toy_dataset.py"
TOY_SECTION = {"kind": "toy", "size": 16, "columns": 4, "levels": 4, "split": {"kind": "none"}}


def test_an_unregistered_kind_is_one_line_listing_the_registered_ones(ci_params):
    with pytest.raises(
        InputError, match=r"^data set kind 'toy' is not registered; registered kinds: bumps, shapes, shapes3d_file$"
    ):
        registry.kind_of({"kind": "toy"})
    ci_params["experiments"]["bumps"]["dataset"] = dict(TOY_SECTION)
    with pytest.raises(params.ParamsError, match=r"dataset.kind = 'toy': allowed: bumps, shapes, shapes3d_file"):
        params.validate(ci_params)


def test_the_schema_is_made_from_the_registered_kinds():
    schema = params.load_schema()
    assert schema["$defs"]["dataset"]["properties"]["kind"]["enum"] == ["bumps", "shapes", "shapes3d_file"]
    assert set(schema["$defs"]["shapes"]["properties"]) == {"kind", "size", "subset", "spacing", "split"}


def toy_experiment(base: dict) -> dict:
    experiment = copy.deepcopy(base["experiments"]["shapes"])  # a full experiment with an exact order
    experiment["dataset"] = dict(TOY_SECTION)
    return experiment


@pytest.mark.slow
def test_a_toy_data_set_added_as_one_module_runs_through_the_pipeline(tmp_path):
    repo = git_repository(tmp_path / "repo")
    shutil.copy(TOY, repo / "src" / "latent_abstractions" / "datasets" / "toy.py")
    base = yaml.safe_load(CI_PARAMS.read_text())
    toy = {**base, "experiments": {"toy": toy_experiment(base)}}
    (repo / "params.yaml").write_text(yaml.safe_dump(toy, sort_keys=False))
    run(snakemake("--workflow-profile", "workflow/profiles/default", "--cores", "2"), repo)
    factors = pq.read_table(repo / "data" / "toy" / "dataset" / "factors.parquet").to_pandas()
    assert len(factors) == 16 and set(factors["column"]) == {0.0, 1.0, 2.0, 3.0}
    decisions = pq.read_table(repo / "data" / "toy" / "exact_decisions.parquet").to_pandas()
    assert set(decisions["factor"]) == {"column", "level"}
    probes = pq.read_table(repo / "data" / "toy" / "probes.parquet").to_pandas()
    assert set(probes["factor"]) == {"column", "level"}
    assert "toy" in (repo / "data" / "report.html").read_text()
    # the claim under test is about Shapes3D's factors: not compared, and no share of agreement
    order = pq.read_table(repo / "data" / "toy" / "order.parquet").to_pandas()
    assert order["claim_agreement_share"].isna().all()
    said = (repo / "data" / "findings.md").read_text()
    assert "not compared" in said and "the trained model's order by each proxy against" not in said
