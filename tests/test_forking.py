"""Study 1's forks and the forward-backward experiment: what their stores hold, that
branches and regenerations depend on where they start, and that they are the same
whatever the batch size."""

from __future__ import annotations

import numpy as np
import pytest

from latent_abstractions.core.factors import Factor
from latent_abstractions.core.pixels import model_range
from latent_abstractions.datasets import base
from latent_abstractions.pipeline.cli import run_step
from latent_abstractions.sampling.forking import parent_conditions, source_rows
from latent_abstractions.stages.fork_trajectories import fork_step
from latent_abstractions.stages.forward_backward import forward_backward_step
from latent_abstractions.store.store import StoreWriter, partial_path
from latent_abstractions.store.store_layout import PARENT_BRANCH
from latent_abstractions.store.trajectories import open_store

from test_store import EXPERIMENT, make_workdir, run_in, store_bytes

FORK_AT = {"at": {"kind": "steps", "steps": [0, 10, 12]}}  # 12 (t_end) has nothing to continue: left out


@pytest.fixture
def forks(tmp_path, ci_params, monkeypatch):
    work = make_workdir(tmp_path, ci_params, fork=FORK_AT)
    run_in(work, monkeypatch, fork_step)
    return work / "data" / EXPERIMENT / "forks"


def test_fork_store_holds_every_branch_and_each_parent(forks):
    store = open_store(forks, "forks")
    assert store.steps == [0, 10, 12] and store.layout["condition"] == [] and store.factor_names == ["x", "y"]
    assert store.spec.rows == {0: 9, 10: 9, 12: 3} and store.spec.parts == {0: 3, 10: 3, 12: 1}
    assert store.spec.to_json() == store.layout  # the JSON form round-trips
    parents = store.table([12])
    assert list(parents.column("branch").to_numpy()) == [PARENT_BRANCH] * 3
    result = store.fork_images()
    assert result.images.shape == (3, 2, 3, 1, 8, 8) and result.parent_images.shape == (3, 1, 8, 8)
    assert list(result.steps) == [0, 10] and result.t[0] == pytest.approx(1.0) and list(result.parents) == [0, 1, 2]
    assert set(result.factors) == {"x", "y"} and np.isin(result.factors["x"], [1.0, 3.0, 5.0]).all()
    branches = store.table([10], ["branch"]).column("branch").to_numpy()
    assert list(branches) == [0, 1, 2] * 3

    def spread(images):  # mean distance between branches of one parent
        flat = images.reshape(*images.shape[:2], -1)
        return float(
            np.mean([np.linalg.norm(flat[:, a] - flat[:, b], axis=-1) for a in range(flat.shape[1]) for b in range(a)])
        )

    at_start, late = spread(result.images[:, 0]), spread(result.images[:, 1])
    assert late < 0.5 * at_start  # branches from a late X_tau agree; from X_T they do not
    assert late > 0  # fresh noise: branches differ


def test_forks_are_the_same_whatever_the_batch_size(tmp_path, ci_params, monkeypatch, forks):
    work = make_workdir(tmp_path / "other", ci_params, fork={**FORK_AT, "batch_size": 5, "eval_block": 4})
    run_in(work, monkeypatch, fork_step)
    again = open_store(work / "data" / EXPERIMENT / "forks").fork_images()
    reference = open_store(forks).fork_images()
    assert np.array_equal(again.images, reference.images) and np.array_equal(
        again.parent_images, reference.parent_images
    )


def test_a_killed_fork_run_resumes(tmp_path, ci_params, monkeypatch, forks):
    work = make_workdir(tmp_path / "killed", ci_params, fork=FORK_AT)
    original = StoreWriter.write_batch

    def dies_at_batch_three(self, batch, parts):
        if batch == 3:
            raise KeyboardInterrupt
        original(self, batch, parts)

    monkeypatch.setattr(StoreWriter, "write_batch", dies_at_batch_three)
    with pytest.raises(KeyboardInterrupt):
        run_in(work, monkeypatch, fork_step)
    target = work / "data" / EXPERIMENT / "forks"
    assert not target.exists() and partial_path(target).exists()
    monkeypatch.setattr(StoreWriter, "write_batch", original)
    run_in(work, monkeypatch, fork_step)
    assert store_bytes(target) == store_bytes(forks)


def test_conditional_branches_keep_their_parents_values(tmp_path, ci_params, monkeypatch):
    work = make_workdir(tmp_path, ci_params, fork={**FORK_AT, "condition": ["x"], "guidance": 2.0})
    run_in(work, monkeypatch, fork_step)
    store = open_store(work / "data" / EXPERIMENT / "forks")
    assert store.layout["condition"] == ["x"] and store.layout["guidance"] == 2.0
    assert store.fork_images().images.shape == (3, 2, 3, 1, 8, 8)


@pytest.mark.parametrize(
    "section, settings, expected",
    [
        (
            "fork",
            {"parent_condition": ["y"], "condition": ["x"]},
            "fork.condition lists x, which the parents are not conditioned on (parent_condition: y)",
        ),
        ("fork", {"at": {"kind": "steps", "steps": [12]}}, "fork.at: no fork time before t_end"),
        ("fork", {"sampler": "ode"}, "fork.sampler = 'ode': allowed: sde, pc"),
        ("fork", {"condition": ["colour"]}, "fork.condition lists unknown factor colour"),
        (
            "forward_backward",
            {"at": {"kind": "times", "times": [2.0]}},
            "forward_backward.at.times.0 = 2.0: must be <= 1",
        ),
        ("forward_backward", {"condition": ["z"]}, "forward_backward.condition lists unknown factor z"),
        ("forward_backward", {"guidance": -1}, "forward_backward.guidance = -1: must be >= 0"),
    ],
)
def test_bad_fork_or_regeneration_input_is_one_line_and_writes_nothing(
    tmp_path, ci_params, monkeypatch, section, settings, expected
):
    work = make_workdir(tmp_path, ci_params, **{section: settings})
    monkeypatch.chdir(work)
    step = fork_step if section == "fork" else forward_backward_step
    with pytest.raises(SystemExit) as caught:
        run_step(section, step, ["--experiment", EXPERIMENT])
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    target = work / "data" / EXPERIMENT / ("forks" if section == "fork" else "forward_backward")
    assert not target.exists() and not partial_path(target).exists()


def test_forward_backward_regenerates_train_and_held_out_images(tmp_path, ci_params, monkeypatch):
    work = make_workdir(tmp_path, ci_params, forward_backward={"at": {"kind": "steps", "steps": [0, 11]}})
    run_in(work, monkeypatch, forward_backward_step)
    store = open_store(work / "data" / EXPERIMENT / "forward_backward", "forward_backward")
    assert store.spec.rows == {0: 12, 11: 12} and store.spec.extra["sources"] == 6
    assert store.spec.to_json() == store.layout
    result = store.regenerations()
    assert result.images.shape == (2, 6, 2, 1, 8, 8)  # 2 times, 3 train + 3 test images, 2 repeats
    assert sorted(result.split) == ["test"] * 3 + ["train"] * 3
    data = base.load(work / "data" / EXPERIMENT / "dataset")
    assert np.array_equal(result.factors["x"], data.factors["x"].to_numpy()[result.sources])
    assert np.array_equal(result.split, data.factors["split"].to_numpy()[result.sources])
    sources = model_range(np.asarray(data.images[result.sources]))[:, None]
    error = np.sqrt(((result.images - sources) ** 2).mean(axis=(2, 3, 4, 5)))  # (times, images)
    assert (error[1] < 0.5 * error[0]).all()  # noised a little, an image comes back; from t = T it does not
    assert not np.array_equal(result.images[:, :, 0], result.images[:, :, 1])  # repeats differ
    other = make_workdir(
        tmp_path / "other", ci_params, forward_backward={"at": {"kind": "steps", "steps": [0, 11]}, "batch_size": 5}
    )
    run_in(other, monkeypatch, forward_backward_step)
    again = open_store(other / "data" / EXPERIMENT / "forward_backward").regenerations()
    assert np.array_equal(again.images, result.images)  # whatever the batch size


def test_draws_of_parents_and_sources():
    factors = [
        Factor("shape", "categorical", (0.0, 1.0, 2.0)),
        Factor("x", "continuous", (4.0, 5.0)),
    ]
    drawn = parent_conditions(factors, ["shape"], 50, seed=0)
    assert list(drawn) == ["shape"] and set(drawn["shape"]) == {0.0, 1.0, 2.0}
    assert np.array_equal(parent_conditions(factors, ["shape"], 50, seed=0)["shape"], drawn["shape"])
    split = np.array(["train"] * 10 + ["test"] * 2)
    rows = source_rows(split, 3, seed=1)
    assert len(rows) == 5 and (np.diff(rows) > 0).all() and (split[rows] == "test").sum() == 2
