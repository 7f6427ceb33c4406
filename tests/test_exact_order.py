"""The exact order of a shapes data set (stage exact_order), the comparison of an order
with the published finding (published_order.py), and the experiment scope that runs only
the data set and the exact order."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from latent_abstractions.analysis.published_order import (
    agrees_with_published,
    compare_with_published,
    decided_order,
    published_rank_agreement,
)
from latent_abstractions.datasets import base
from latent_abstractions.pipeline import params, stage_table
from latent_abstractions.pipeline.paths import ExperimentPaths
from latent_abstractions.stages import exact_order, prepare_data

from conftest import ROOT

TINY_SUBSET = {
    "floor_hue": [0, 5],
    "wall_hue": [0, 5],
    "object_hue": [0, 5],
    "scale": [0, 7],
    "shape": [0, 2],
    "orientation": [0, 14],
}  # 64 distinct 8x8 scenes
# Spearman's rho of positions 1..6 against 4 early and 2 late factors, when they agree:
# covariance sum 4 over sqrt(17.5 * 4/3) (module docstring of published_order).
RHO_AGREEING = 4 / np.sqrt(17.5 * 4 / 3)


def tiny_exact_experiment(**exact) -> dict:
    experiment = {
        "scope": "exact",
        "dataset": {"kind": "shapes", "size": 8, "subset": copy.deepcopy(TINY_SUBSET), "split": {"kind": "none"}},
        "sde": {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0},
        "exact_order": {"points": 16, "samples": 64, "bootstrap": 20, **exact},
    }
    return params.validate({"experiments": {"tiny": experiment}})


# ---------------------------------------------------------------- the published order


def test_order_is_read_from_decision_times_first_decided_first():
    decisions = pd.DataFrame(
        {
            "factor": ["scale", "floor_hue", "shape", "orientation", "wall_hue"],
            "tau_50": [0.3, 0.8, 0.5, np.nan, 0.5],
            "tau_90": [0.2, 0.7, 0.3, np.nan, 0.4],
        }
    )
    assert decided_order(decisions) == ["floor_hue", "wall_hue", "shape", "scale"]  # tie on tau_50: tau_90 decides
    assert decided_order(decisions, level=90) == ["floor_hue", "wall_hue", "shape", "scale"]
    with pytest.raises(ValueError, match="one row per factor"):
        decided_order(pd.concat([decisions, decisions]))


def test_agreement_with_the_published_order():
    published = ["wall_hue", "shape", "floor_hue", "object_hue", "orientation", "scale"]
    assert agrees_with_published(published)
    assert agrees_with_published(["x", "shape", "y", "scale"])  # factors outside the finding are left out
    assert not agrees_with_published(["floor_hue", "wall_hue", "object_hue", "orientation", "scale", "shape"])
    assert published_rank_agreement(published) == pytest.approx(RHO_AGREEING)
    assert published_rank_agreement(published[::-1]) == pytest.approx(-RHO_AGREEING)
    # one early factor last: positions 1..6 against groups E E E L L E, covariance sum 2
    found = ["floor_hue", "wall_hue", "object_hue", "orientation", "scale", "shape"]
    assert published_rank_agreement(found) == pytest.approx(RHO_AGREEING / 2)


@pytest.mark.parametrize(
    "order, message",
    [
        (["shape", "shape", "scale"], "each factor once"),
        (["shape", "floor_hue"], "needs an early"),
        (["x", "y"], "needs an early"),
    ],
)
def test_an_order_that_cannot_be_compared_is_named(order, message):
    with pytest.raises(ValueError, match=message):
        agrees_with_published(order)
    with pytest.raises(ValueError, match=message):
        published_rank_agreement(order)


def test_comparison_for_a_report_line():
    decisions = pd.DataFrame(
        {"factor": ["scale", "shape", "floor_hue"], "tau_50": [0.2, 0.6, 0.7], "tau_90": [0.1, 0.5, 0.6]}
    )
    found = compare_with_published(decisions)
    assert found["text"] == "floor_hue, shape, scale" and found["agrees"] is True
    assert found["rank_agreement"] == pytest.approx(np.corrcoef([1, 2, 3], [1.5, 1.5, 3])[0, 1])


# ---------------------------------------------------------------- the stage


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exact")
    experiment = tiny_exact_experiment()["experiments"]["tiny"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        prepare_data.prepare("tiny", experiment)
        exact_order.exact_order_step("tiny", experiment)
        tables = (
            pd.read_parquet(ExperimentPaths("tiny").exact_information),
            pd.read_parquet(ExperimentPaths("tiny").exact_decisions),
        )
        source = exact_order.mixture(base.load(ExperimentPaths("tiny").dataset_dir), "all", torch.device("cpu"))
    return (*tables, source)


def test_curves_lie_in_zero_to_entropy_and_grow_along_generation(tiny_run):
    curves, _, _ = tiny_run
    assert set(curves["factor"]) == set(TINY_SUBSET) and (curves["experiment"] == "tiny").all()
    assert (curves["mi"] <= curves["entropy"] + 1e-12).all()
    assert (curves["mi"] >= -3 * curves["stderr"] - 1e-12).all()
    for factor, curve in curves.groupby("factor"):
        assert curve["t"].is_monotonic_decreasing  # generation order
        mi, stderr = curve["mi"].to_numpy(), curve["stderr"].to_numpy()
        allowed = 3 * np.hypot(stderr[1:], stderr[:-1]) + 1e-9
        assert (np.diff(mi) >= -allowed).all(), factor  # I(Y; X_t) is non-increasing in t
        assert mi[0] < 0.5 * curve["entropy"].iloc[0] and mi[-1] == pytest.approx(curve["entropy"].iloc[0])
        assert curve["stderr"].max() < 0.1


def test_decision_times_are_where_the_curves_cross(tiny_run):
    curves, decisions, _ = tiny_run
    assert list(decisions["rank_50"]) == sorted(decisions["rank_50"])
    assert decisions["tau_50"].is_monotonic_decreasing  # rank 1: decided first (largest t)
    assert (decisions["tau_90"] < decisions["tau_50"]).all()
    for row in decisions.itertuples():
        curve = curves[curves["factor"] == row.factor]
        lam, fraction = curve["log_snr"].to_numpy(), curve["fraction"].to_numpy()
        assert (fraction[lam < row.log_snr_50] < 0.5).all()  # the first crossing along generation
        assert np.interp(row.log_snr_50, lam, fraction) == pytest.approx(0.5)
        assert np.interp(row.log_snr_90, lam, fraction) == pytest.approx(0.9)
    errors = decisions[[c for c in decisions if c.endswith("_stderr")]].to_numpy()
    assert np.isfinite(errors).all() and (errors > 0).all() and (errors < 0.5).all()
    assert decided_order(decisions) == list(decisions["factor"])
    assert set(decisions["published_group"]) == {"early", "late"}


def test_a_factor_with_one_value_is_left_out(tmp_path, monkeypatch):
    experiment = tiny_exact_experiment()["experiments"]["tiny"]
    experiment["dataset"]["subset"]["shape"] = [1]
    monkeypatch.chdir(tmp_path)
    prepare_data.prepare("tiny", experiment)
    assert [f.name for f in exact_order.load_dataset("tiny", experiment).factor_table] == [
        "floor_hue",
        "wall_hue",
        "object_hue",
        "scale",
        "orientation",
    ]


def test_the_mixture_streams_the_stored_images(tiny_run):
    """No float copy of the set: the mixture reads the memory-mapped uint8 file chunk by chunk."""
    *_, source = tiny_run
    stored = source.image_rows.images
    assert isinstance(stored, np.memmap) and stored.dtype == np.uint8
    assert source.image_rows.cache is None


def run_stage(cwd, experiment: str):
    return subprocess.run(
        [sys.executable, "-m", "latent_abstractions.stages.exact_order", "--experiment", experiment],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_input_gives_one_line(workdir, default_params):
    both = tiny_exact_experiment()
    both["experiments"]["bumps"] = default_params["experiments"]["bumps"]
    (workdir / "params.yaml").write_text(yaml.safe_dump(both))
    for name, expected in (
        (
            "bumps",
            "error: exact_order: experiment bumps has a bumps data set; the exact order is made for data set kinds "
            "shapes, shapes3d_file",
        ),
        ("tiny", "error: exact_order: dataset file missing: data/tiny/dataset/images.npy (make the data set of tiny"),
    ):
        result = run_stage(workdir, name)
        assert result.returncode == 1
        assert result.stderr.strip().startswith(expected) and len(result.stderr.strip().splitlines()) == 1
    assert not (workdir / "data").exists()


# ---------------------------------------------------------------- scope


def test_an_exact_scope_runs_only_the_data_set_and_the_exact_order(default_params):
    mixed = tiny_exact_experiment()
    mixed["experiments"]["shapes"] = default_params["experiments"]["shapes"]
    mixed["experiments"]["bumps"] = default_params["experiments"]["bumps"]
    real = copy.deepcopy(mixed["experiments"]["tiny"])
    real["dataset"] = {"kind": "shapes3d_file", "path": "3dshapes.h5", "split": {"kind": "none"}}
    mixed["experiments"]["real"] = params.validate({"experiments": {"real": real}})["experiments"]["real"]
    runs = {entry.name: stage_table.experiments_of(entry, mixed) for entry in stage_table.STAGES}
    assert {name for name, experiments in runs.items() if "tiny" in experiments} == {
        "prepare_data",
        "dataset_sheets",
        "exact_order",
    }
    assert {name for name, experiments in runs.items() if "real" in experiments} == {
        "import_shapes3d",
        "dataset_sheets",
        "exact_order",
    }
    assert runs["exact_order"] == ["real", "shapes", "tiny"]
    assert "shapes" in runs["train_score_model"] and "bumps" in runs["evaluate_generation"]
    only = stage_table.final_outputs(tiny_exact_experiment())
    assert "data/tiny/exact_decisions.parquet" in only and not any("model" in path for path in only)
    assert stage_table.REPORT.inputs(tiny_exact_experiment()) == [
        "data/tiny/dataset/factors.parquet",  # the dataset sheets' inputs, whose md5 the report lists
        "data/tiny/dataset/images.npy",
        "data/tiny/exact_decisions.parquet",
        "data/tiny/figures/dataset_contact_sheet.png",
        "data/tiny/figures/dataset_traversals.png",
    ]


def test_only_a_full_scope_needs_the_model_sections(default_params):
    experiment = tiny_exact_experiment()["experiments"]["tiny"]
    assert experiment["exact_order"]["rows"] == "all" and "model" not in experiment
    full = copy.deepcopy(experiment)
    full["scope"] = "full"
    with pytest.raises(params.ParamsError, match="experiments.tiny lacks model, train, sample"):
        params.validate({"experiments": {"tiny": full}})
    assert default_params["experiments"]["shapes"]["scope"] == "full"


PARAMS_FILES = [
    "params.yaml",
    "tests/params-ci.yaml",
    *sorted(f"workflow/configs/{p.name}" for p in (ROOT / "workflow" / "configs").glob("*.yaml")),
]


@pytest.mark.parametrize("name", PARAMS_FILES)
def test_every_section_a_stage_reads_is_written_out(name):
    """DVC reads params.yaml as written (no schema defaults): a stage's params section left
    out of an experiment that runs it stops `dvc repro` ("Parameters ... are missing")."""
    written = yaml.safe_load((ROOT / name).read_text())["experiments"]
    filled = params.load(ROOT / name)
    missing = [
        f"{experiment}.{section} (for {entry.name})"
        for entry in stage_table.STAGES
        for experiment in stage_table.experiments_of(entry, filled)
        for section in entry.params
        if section not in written[experiment]
    ]
    assert not missing, f"{name} lacks {', '.join(missing)}"


def test_a_native_spacing_subset_of_values_far_apart_is_refused_naming_the_factor():
    from latent_abstractions.pipeline import params

    tree = {
        "experiments": {
            "n": {
                "scope": "exact",
                "dataset": {
                    "kind": "shapes",
                    "size": 8,
                    "spacing": "native",
                    "split": {"kind": "none"},
                    "subset": {"floor_hue": [3, 4], "orientation": [0, 7, 14]},
                },
                "sde": {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0},
            }
        }
    }
    with pytest.raises(
        params.ParamsError, match=r"experiments\.n\.dataset\.subset\.orientation = \[0, 7, 14\]: spacing native"
    ):
        params.validate(tree)
    tree["experiments"]["n"]["dataset"]["subset"]["orientation"] = [8, 6, 7]  # consecutive in any order
    params.validate(tree)
