"""Trajectory recording: which steps, which columns, and the Parquet round trip."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import torch

from latent_abstractions import checkpoints, trajectories
from latent_abstractions.factors import Factor
from latent_abstractions.stages.sample_trajectories import condition_grid, record_steps, requested_positions
from latent_abstractions.recording import TrajectoryRecorder
from latent_abstractions.samplers import reverse_sde_euler_maruyama
from latent_abstractions.sde import VPSDE, time_grid
from conftest import perturb


def test_record_steps_include_both_ends():
    assert record_steps(100, 5) == [0, 25, 50, 75, 100]
    assert record_steps(3, 8) == [0, 1, 2, 3]


def test_requested_positions_cross_the_lattice():
    grid = condition_grid([{"name": "x", "kind": "continuous", "values": [1.0, 2.0, 3.0]},
                           {"name": "y", "kind": "continuous", "values": [5.0, 6.0]}])
    requested = requested_positions(grid, stride=2, per_position=3, max_conditions=100, seed=0)
    assert set(zip(requested["x"], requested["y"])) == {(1.0, 5.0), (3.0, 5.0)}
    assert len(requested["x"]) == 6 and list(requested["x"][:3]) == [1.0, 1.0, 1.0]


def test_categorical_conditions_are_indices_and_capped():
    grid = condition_grid([{"name": "shape", "kind": "categorical", "values": [0.0, 1.0, 2.0, 3.0]},
                           {"name": "hue", "kind": "categorical", "values": [0.1, 0.5, 0.9]}])
    assert list(grid["hue"]) == [0.0, 1.0, 2.0]
    requested = requested_positions(grid, stride=1, per_position=1, max_conditions=5, seed=3)
    pairs = set(zip(requested["shape"], requested["hue"]))
    assert len(pairs) == 5 and pairs <= {(s, h) for s in range(4) for h in range(3)}
    again = requested_positions(grid, stride=1, per_position=1, max_conditions=5, seed=3)
    assert np.array_equal(again["shape"], requested["shape"])


def test_recorded_table_layout_and_round_trip(tmp_path):
    factors = [Factor("x", "continuous", (1.0, 2.0)), Factor("y", "continuous", (1.0, 2.0))]
    architecture = checkpoints.architecture_from_params(
        {"base_channels": 8, "channel_mults": [1, 2], "groups": 4, "cond_frequencies": 2, "blocks_per_level": 1, "attention_levels": [], "heads": 1, "condition_on": []},
        factors, (1, 8, 8))
    torch.manual_seed(0)
    model = perturb(checkpoints.build_model(architecture)).eval()
    sde = VPSDE()
    requested = {"x": np.array([1.0, 2.0, 2.0]), "y": np.array([1.0, 1.0, 2.0])}
    values = torch.tensor(np.stack([requested["x"], requested["y"]], axis=1), dtype=torch.float32)
    torch.manual_seed(1)
    control = checkpoints.build_model(architecture).eval()
    recorder = TrajectoryRecorder(model, sde, values, record_steps=[0, 5, 10], taps=["mid", "up.0"], control=control)
    generator = torch.Generator().manual_seed(0)
    final = reverse_sde_euler_maruyama(recorder, sde, torch.randn(3, 1, 8, 8, generator=generator),
                                       time_grid(1.0, 1e-3, 10), generator)
    table = recorder.table(requested)
    path = tmp_path / "trajectories.parquet"
    factor_list = [{"name": f.name, "kind": f.kind, "values": list(f.values)} for f in factors]
    trajectories.write(table, path, (1, 8, 8), ["mid", "up.0"], factor_list, {"step": "test"})

    read = pq.read_table(path)
    assert read.num_rows == 3 * 3
    assert trajectories.read_layout(path) == {"image_shape": [1, 8, 8], "taps": ["mid", "up.0"],
                                              "passes": ["cond", "uncond", "random"], "factors": factor_list}
    taps = [f"{kind}.{p}.{tap}" for p in ("cond", "uncond", "random") for tap in ("mid", "up.0") for kind in ("act", "map")]
    assert sorted(trajectories.feature_columns(read)) == sorted(["state", "denoised.cond", "denoised.uncond", *taps])
    assert [f for f in trajectories.feature_columns(read) if trajectories.sees_condition(f)] == [
        "denoised.cond", "act.cond.mid", "map.cond.mid", "act.cond.up.0", "map.cond.up.0"]
    assert trajectories.vector_column(read, "state").shape == (9, 64)
    assert trajectories.vector_column(read, "act.cond.mid").shape == (9, 16)
    assert trajectories.vector_column(read, "map.cond.mid").shape == (9, 16 * 16)  # 16 channels, 4 x 4 cells
    assert trajectories.vector_column(read, "act.uncond.up.0").shape == (9, 8)
    assert trajectories.vector_column(read, "map.random.up.0").shape == (9, 8 * 16)
    steps, t = read.column("step").to_numpy(), read.column("t").to_numpy()
    assert list(np.unique(steps)) == [0, 5, 10]
    assert np.allclose(t[steps == 0], 1.0) and np.allclose(t[steps == 10], 1e-3)
    # the last recorded denoised estimate is the sampler's output
    last = trajectories.vector_column(read, "denoised.cond")[steps == 10]
    assert np.allclose(last, final.flatten(1).numpy(), atol=1e-6)
    # conditional and unconditional passes differ (the condition is used)
    assert not np.allclose(trajectories.vector_column(read, "act.cond.mid"),
                           trajectories.vector_column(read, "act.uncond.mid"))
