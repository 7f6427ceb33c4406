"""Trajectory recording: which steps, which conditions, which columns, the guidance mix,
and the noise and network evaluation that make a trajectory independent of its batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latent_abstractions.core.errors import InputError
from latent_abstractions.core.factors import Factor
from latent_abstractions.diffusion import checkpoints
from latent_abstractions.diffusion.counter_noise import CounterNoise
from latent_abstractions.diffusion.samplers import SAMPLERS, gaussian_noise, reverse_sde_euler_maruyama
from latent_abstractions.diffusion.sde import VESDE, VPSDE, time_grid
from latent_abstractions.sampling.recording import (
    BlockNetwork,
    TrajectoryRecorder,
    condition_grid,
    factor_input,
    keep_mask,
    recorded_steps,
    resolve_condition,
    stream_seed,
)
from latent_abstractions.stages.sample_trajectories import requested_positions
from latent_abstractions.store import store_layout

from conftest import perturb

FACTORS = [
    {"name": "x", "kind": "continuous", "values": [1.0, 2.0]},
    {"name": "y", "kind": "continuous", "values": [1.0, 2.0]},
]


@pytest.fixture(scope="module")
def networks():
    factors = [Factor.from_dict(f) for f in FACTORS]
    architecture = checkpoints.architecture_from_params(
        {
            "base_channels": 8,
            "channel_mults": [1, 2],
            "groups": 4,
            "cond_frequencies": 2,
            "blocks_per_level": 1,
            "attention_levels": [],
            "heads": 1,
        },
        factors,
        (1, 8, 8),
    )
    torch.manual_seed(0)
    model = perturb(checkpoints.build_model(architecture)).eval()
    torch.manual_seed(1)
    return model, checkpoints.build_model(architecture).eval()


def test_requested_positions_cross_the_lattice():
    grid = condition_grid(
        [
            Factor("x", "continuous", (1.0, 2.0, 3.0)),
            Factor("y", "continuous", (5.0, 6.0)),
        ]
    )
    requested = requested_positions(grid, stride=2, per_position=3, max_conditions=100, seed=0)
    assert set(zip(requested["x"], requested["y"])) == {(1.0, 5.0), (3.0, 5.0)}
    assert len(requested["x"]) == 6 and list(requested["x"][:3]) == [1.0, 1.0, 1.0]
    assert requested_positions({}, stride=1, per_position=3, max_conditions=5, seed=0) == {}


def test_categorical_conditions_are_indices_and_capped():
    grid = condition_grid(
        [
            Factor("shape", "categorical", (0.0, 1.0, 2.0, 3.0)),
            Factor("hue", "categorical", (0.1, 0.5, 0.9)),
        ]
    )
    assert list(grid["hue"]) == [0.0, 1.0, 2.0]
    requested = requested_positions(grid, stride=1, per_position=1, max_conditions=5, seed=3)
    pairs = set(zip(requested["shape"], requested["hue"]))
    assert len(pairs) == 5 and pairs <= {(s, h) for s in range(4) for h in range(3)}
    again = requested_positions(grid, stride=1, per_position=1, max_conditions=5, seed=3)
    assert np.array_equal(again["shape"], requested["shape"])


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["vp", "ve"])
def test_time_selections_land_on_the_grid(sde):
    times = time_grid(1.0, 1e-3, 100, sde=sde)
    assert recorded_steps({"kind": "log_snr", "count": 5}, times, sde, "r") == [0, 25, 50, 75, 100]
    assert recorded_steps({"kind": "steps", "steps": [100, 3]}, times, sde, "r") == [3, 100]
    snapped = recorded_steps({"kind": "times", "times": [1.0, 0.5, 0.001]}, times, sde, "r")
    assert snapped[0] == 0 and snapped[-1] == 100
    middle = float(times[snapped[1]])
    assert abs(float(sde.log_snr(torch.tensor(middle))) - float(sde.log_snr(torch.tensor(0.5)))) < float(
        sde.log_snr(times[1:2]) - sde.log_snr(times[0:1])
    )  # within a grid step in log-SNR
    uniform = time_grid(1.0, 1e-3, 10, spacing="uniform")
    assert recorded_steps({"kind": "times", "times": [0.5005]}, uniform, sde, "r") == [5]


@pytest.mark.parametrize(
    "selection, message",
    [
        ({"kind": "times", "times": [1.2]}, r"r.times: 1.2 is outside \(0, T\] = \(0, 1\]"),
        ({"kind": "times", "times": [0.0]}, r"r.times: 0 is outside \(0, T\]"),
        ({"kind": "times", "times": [1e-4]}, r"r.times: 0.0001 is outside the sampled range \[0.001, 1\]"),
        ({"kind": "steps", "steps": [-1]}, "r.steps: -1 is not a step of the 10-step grid"),
        ({"kind": "steps", "steps": [11]}, "r.steps: 11 is not a step"),
        ({"kind": "log_snr", "count": 12}, "r.count: 12 times do not fit on a grid of 11 times"),
        ({"kind": "times", "times": [0.5, 0.49]}, "r: t = 0.5 and t = 0.49 fall on the same step"),
        ({"kind": "seconds"}, "r.kind: unknown time selection 'seconds'"),
    ],
)
def test_bad_time_selections_are_one_line(selection, message):
    sde = VPSDE()
    with pytest.raises(InputError, match=message) as caught:
        recorded_steps(selection, time_grid(1.0, 1e-3, 10, sde=sde), sde, "r")
    assert "\n" not in str(caught.value)


def test_conditions_resolve_to_the_networks_factor_order():
    factors = [Factor.from_dict(f) for f in FACTORS]
    assert resolve_condition("all", factors, "c") == ["x", "y"]
    assert resolve_condition(["y", "x"], factors, "c") == ["x", "y"]
    assert resolve_condition([], factors, "c") == []
    with pytest.raises(InputError, match="^c lists unknown factor colour; the model knows: x, y$"):
        resolve_condition(["colour"], factors, "c")


def test_the_network_input_feeds_the_requested_factors_only():
    factors = [Factor.from_dict(f) for f in FACTORS]
    values = factor_input(factors, {"y": np.array([3.0, 4.0])}, 2)
    assert values.tolist() == [[0.0, 3.0], [0.0, 4.0]]
    assert keep_mask(factors, ["y"], 2).tolist() == [[False, True], [False, True]]
    assert keep_mask(factors, [], 0).shape == (0, 2)


def record(networks, keep=None, guidance=1.0, full_maps=(), steps=10, record=(0, 5, 10)):
    model, control = networks
    sde = VPSDE()
    values = torch.tensor([[1.0, 1.0], [2.0, 1.0], [2.0, 2.0]])
    recorder = TrajectoryRecorder(
        model, sde, values, record, ["mid", "up.0"], control, keep=keep, guidance=guidance, full_maps=full_maps, block=4
    )
    generator = torch.Generator().manual_seed(0)
    final = reverse_sde_euler_maruyama(
        recorder,
        sde,
        torch.randn(3, 1, 8, 8, generator=generator),
        time_grid(1.0, 1e-3, steps, sde=sde),
        gaussian_noise(generator),
    )
    return recorder, final


def layout_of(recorder, full_maps=()) -> dict:
    shapes = {"mid": [16, 4, 4], "up.0": [8, 8, 8]}
    return {
        "kind": "trajectories",
        "image_shape": [1, 8, 8],
        "factor_names": [],
        "passes": recorder.passes,
        "taps": ["mid", "up.0"],
        "full_maps": list(full_maps),
        "tap_shapes": shapes,
    }


def test_recorded_columns_are_the_documented_ones(networks):
    recorder, final = record(networks, full_maps=["mid"])
    assert recorder.passes == ["cond", "uncond", "random"] and sorted(recorder.records) == [0, 5, 10]
    expected = dict(store_layout.vector_columns(layout_of(recorder, ["mid"])))
    for step, columns in recorder.records.items():
        assert list(columns) == list(expected), step  # the schema's order
        for name, values in columns.items():
            width = expected[name].list_size
            assert values.shape == (3, width) and values.dtype == expected[name].value_type.to_pandas_dtype(), name
    assert recorder.records[10]["full.cond.mid"].dtype == np.float16
    assert np.allclose(
        recorder.records[10]["full.cond.mid"].reshape(3, 16, 16).astype(np.float32).mean(axis=2),
        recorder.records[10]["act.cond.mid"],
        atol=1e-2,
    )
    assert np.allclose(recorder.records[10]["denoised.cond"], final.flatten(1).numpy(), atol=1e-6)  # the output
    assert not np.allclose(recorder.records[5]["act.cond.mid"], recorder.records[5]["act.uncond.mid"])
    assert [f for f in expected if store_layout.sees_condition(f)] == [
        "eps.cond",
        "denoised.cond",
        "act.cond.mid",
        "map.cond.mid",
        "act.cond.up.0",
        "map.cond.up.0",
        "full.cond.mid",
    ]


def test_guidance_mixes_the_passes_the_sampler_follows(networks):
    plain, _ = record(networks)
    mixed, final = record(networks, guidance=3.0)
    state = mixed.records[5]
    # the same start and noise: the trajectories agree at step 0 and part after it
    assert np.array_equal(plain.records[0]["state"], mixed.records[0]["state"])
    assert not np.allclose(plain.records[5]["state"], state["state"])
    last = mixed.records[10]
    guided = last["denoised.uncond"] + 3.0 * (last["denoised.cond"] - last["denoised.uncond"])
    assert np.allclose(guided, final.flatten(1).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="guidance scale -1.0 must be >= 0"):
        record(networks, guidance=-1.0)


def test_unconditional_sampling_has_no_cond_pass(networks):
    recorder, final = record(networks, keep=torch.zeros(3, 2, dtype=torch.bool))
    assert recorder.passes == ["uncond", "random"]
    assert not any(store_layout.sees_condition(c) for c in recorder.records[5])
    assert np.allclose(recorder.records[10]["denoised.uncond"], final.flatten(1).numpy(), atol=1e-6)
    subset, _ = record(networks, keep=torch.tensor([[True, False]] * 3))
    assert subset.passes == ["cond", "uncond", "random"]


def test_blocks_and_streams_make_a_row_independent_of_its_batch(networks):
    model, _ = networks
    generator = torch.Generator().manual_seed(5)
    x, t = torch.randn(13, 1, 8, 8, generator=generator), torch.rand(13, generator=generator)
    values, keep = torch.rand(13, 2, generator=generator) + 1, torch.ones(13, 2, dtype=torch.bool)
    network = BlockNetwork(model, 4)
    with torch.no_grad():
        whole = network(x, t, values, keep, ["mid"])
        for size in (1, 3, 6):
            parts = [
                network(x[i : i + size], t[i : i + size], values[i : i + size], keep[i : i + size], ["mid"])
                for i in range(0, 13, size)
            ]
            assert torch.equal(torch.cat([p[0] for p in parts]), whole[0])
            assert torch.equal(torch.cat([p[1]["mid"] for p in parts]), whole[1]["mid"])
    seeds = [stream_seed(3, 0, j) for j in range(5)]
    together = CounterNoise(seeds)((5, 2, 3))
    assert torch.equal(
        torch.cat([CounterNoise(seeds[:2])((2, 2, 3)), CounterNoise(seeds[2:])((3, 2, 3))]),
        together,
    )
    assert stream_seed(3, 0, 1) != stream_seed(3, 1, 0) and stream_seed(3, 0, 1) < 2**63


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_draws_its_noise_per_trajectory(networks, sampler):
    model, _ = networks
    sde = VPSDE()
    times = time_grid(1.0, 1e-3, 6, sde=sde)
    values = torch.tensor([[1.0, 1.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0]])

    def sample(rows):
        noise = CounterNoise([stream_seed(0, 0, j) for j in rows])
        prior = noise((len(rows), 1, 8, 8))
        recorder = TrajectoryRecorder(model, sde, values[rows], [], [], block=4)
        return SAMPLERS[sampler](recorder, sde, prior, times, noise=noise)

    assert torch.equal(torch.cat([sample([0]), sample([1, 2, 3])]), sample([0, 1, 2, 3]))
