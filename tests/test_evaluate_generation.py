"""The bumps evaluation over training checkpoints: accuracy, the order of the condition's
representation at every block with the phase read at one, and the 2-D pictures; a
representation tap the network lacks is refused in one line naming the taps it has."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from latent_abstractions.analysis import representation
from latent_abstractions.core.errors import InputError
from latent_abstractions.datasets import base, bumps
from latent_abstractions.stages.evaluate_generation import evaluate_step

from test_store import EXPERIMENT, experiment_params, make_workdir

STEPS = (10, 20)


def evaluation_workdir(tmp_path, ci_params, spacing_y: float = 1.0, **generation):
    """make_workdir's tiny model as two checkpoints, on a 6 x 6 lattice of centres (enough
    conditions to measure order), with a short sampler; ``spacing_y`` beyond the canvas
    leaves one row of centres (a 1-D control of x)."""
    work = make_workdir(tmp_path, ci_params)
    data = bumps.make(height=8, width=8, sigma=1.0, spacing_x=1.0, spacing_y=spacing_y, margin=1.0)
    data.factors["split"] = "train"
    base.save(data, work / "data" / EXPERIMENT / "dataset", {"step": "test"})
    model_dir = work / "data" / EXPERIMENT / "model"
    (model_dir / "checkpoints").mkdir()
    for step in STEPS:
        shutil.copy(model_dir / "weights.safetensors", model_dir / "checkpoints" / f"step_{step}.safetensors")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["experiments"][EXPERIMENT]["generation"].update({"steps": 8, **generation})
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return work


def test_every_block_is_measured_and_the_phase_reads_the_phase_tap(tmp_path, ci_params, monkeypatch):
    work = evaluation_workdir(tmp_path, ci_params)
    monkeypatch.chdir(work)
    evaluate_step(EXPERIMENT, experiment_params(work))
    generation = work / "data" / EXPERIMENT / "generation"
    orders = pq.read_table(generation / "representation.parquet").to_pandas()
    assert set(orders["tap"]) == {"down.0", "down.1", "mid", "up.0", "up.1"}
    at_checkpoints = orders[orders["reference"] == "checkpoint"]
    assert sorted(at_checkpoints["training_step"].unique()) == list(STEPS)
    chosen = at_checkpoints[at_checkpoints["phase_tap"]]
    assert set(chosen["tap"]) == {"down.1"} and len(chosen) == len(STEPS)  # the deepest encoder block
    for _, row in chosen.iterrows():
        assert row["phase"] == representation.representation_phase(row["intrinsic_dimension"], row["knn_r2"])
        assert row["generation_behaviour"] == representation.generation_behaviour(
            row["multi_bump_fraction"], row["accuracy"]
        )
    assert at_checkpoints.groupby("training_step")["phase"].nunique().eq(1).all()  # one phase per checkpoint
    controls = orders[orders["reference"] != "checkpoint"].groupby("reference")
    assert {name: len(rows) for name, rows in controls} == {"permuted": 5, "untrained": 5}
    permuted = orders[(orders["reference"] == "permuted") & orders["phase_tap"]].iloc[0]
    final = chosen.sort_values("training_step").iloc[-1]
    # the same vectors on other conditions: the point cloud's dimension kept, its order gone
    assert permuted["intrinsic_dimension"] == pytest.approx(final["intrinsic_dimension"])
    assert permuted["knn_r2"] < final["knn_r2"]
    pictures = pq.read_table(generation / "embedding.parquet").to_pandas()
    assert set(pictures["method"]) == {"pca", "umap"} and set(pictures["tap"]) == {"down.1"}
    assert len(pictures) == 2 * len(STEPS) * 36 and np.isfinite(pictures[["c1", "c2"]].to_numpy()).all()


def test_a_tap_the_network_lacks_is_one_line_listing_its_taps(tmp_path, ci_params, monkeypatch):
    work = evaluation_workdir(tmp_path, ci_params, representation_tap="down.7")
    monkeypatch.chdir(work)
    with pytest.raises(InputError) as raised:
        evaluate_step(EXPERIMENT, experiment_params(work))
    assert str(raised.value) == "unknown feature tap down.7; this model has: down.0, down.1, mid, up.0, up.1"
    assert not (work / "data" / EXPERIMENT / "generation").exists()


def test_a_control_with_too_few_conditions_is_judged_and_its_geometry_left_unmeasured(tmp_path, ci_params, monkeypatch):
    work = evaluation_workdir(tmp_path, ci_params, spacing_y=100.0)  # 6 centres along x, one y
    monkeypatch.chdir(work)
    evaluate_step(EXPERIMENT, experiment_params(work))
    generation = work / "data" / EXPERIMENT / "generation"
    accuracy = pq.read_table(generation / "accuracy.parquet").to_pandas()
    assert set(accuracy["samples"]) == {6} and accuracy["accuracy"].between(0, 1).all()
    orders = pq.read_table(generation / "representation.parquet").to_pandas()
    assert orders["knn_r2"].isna().all() and set(orders["phase"]) == {"-"}
    assert len(pq.read_table(generation / "embedding.parquet")) == 0


def test_samples_are_drawn_for_a_seeded_subset_of_positions(tmp_path, ci_params, monkeypatch):
    work = evaluation_workdir(tmp_path, ci_params, max_positions=10)
    monkeypatch.chdir(work)
    evaluate_step(EXPERIMENT, experiment_params(work))
    generation = work / "data" / EXPERIMENT / "generation"
    accuracy = pq.read_table(generation / "accuracy.parquet").to_pandas()
    assert set(accuracy["samples"]) == {10}
    orders = pq.read_table(generation / "representation.parquet").to_pandas()
    assert orders["knn_r2"].notna().all()  # the representation still reads all 36 positions
