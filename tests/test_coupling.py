"""The coupling test (docs/science.md, "Coupling"): crossings bracketed by checkpoints and
interpolated in log-step; coupled, factorized or inconclusive from seed ranges against the
1-D controls; a study missing an arm or seeds refused before any training."""

from __future__ import annotations

import copy
import importlib.util
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from latent_abstractions.analysis import coupling
from latent_abstractions.pipeline import params

from conftest import ROOT


def test_a_crossing_is_interpolated_in_log_step_inside_its_bracket():
    found = coupling.crossing(np.array([100, 400]), np.array([0.0, 1.0]), 0.5)
    assert (found.after, found.before) == (100, 400) and found.step == pytest.approx(200.0)
    assert not found.censored


def test_crossings_outside_the_checkpoints_are_censored():
    never = coupling.crossing(np.array([10, 20]), np.array([0.1, 0.2]), 0.5)
    assert never.censored and math.isinf(never.step) and never.after == 20
    at_once = coupling.crossing(np.array([10, 20]), np.array([0.8, 0.9]), 0.5)
    assert at_once.censored and at_once.step == 10


def spreads(two_d: dict, one_d: dict) -> pd.DataFrame:
    """Seed ranges for one group, one measure and level: axis -> (low, high)."""
    rows = []
    for arm_of, ranges in (("vanilla", two_d), ("control", one_d)):
        for axis, (low, high) in ranges.items():
            arm = "vanilla" if arm_of == "vanilla" else f"control_{axis}"
            rows.append(
                {
                    "group": "g",
                    "arm": arm,
                    "axis": axis,
                    "measure": "m",
                    "level": 0.5,
                    "median": math.sqrt(low * high),
                    "low": low,
                    "high": high,
                    "seeds": 3,
                    "censored": False,
                    "measured": True,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "two_d, one_d, expected",
    [
        ({"x": (900, 1100), "y": (300, 400)}, {"x": (1000, 1200), "y": (350, 450)}, "factorized"),
        # x speeds up toward y in the 2-D task, beyond its control's seed range: coupled
        ({"x": (500, 600), "y": (300, 400)}, {"x": (1000, 1200), "y": (350, 450)}, "coupled"),
        # both axes slow down together: they leave their controls but do not move closer
        ({"x": (3000, 3600), "y": (900, 1000)}, {"x": (1000, 1200), "y": (350, 450)}, "inconclusive"),
        # both slow down, y more, so the gap shrinks: but x moves away from y, not toward it
        ({"x": (3000, 3600), "y": (1500, 1700)}, {"x": (1000, 1200), "y": (350, 450)}, "inconclusive"),
        # x moves toward y, but by less than the seeds spread
        ({"x": (700, 1300), "y": (300, 400)}, {"x": (1400, 1500), "y": (350, 450)}, "inconclusive"),
    ],
)
def test_the_verdict_follows_the_written_criterion(two_d, one_d, expected):
    answer, why = coupling.verdict(spreads(two_d, one_d), "g", "m", 0.5)
    assert answer == expected, why


def test_a_censored_crossing_is_inconclusive():
    table = spreads({"x": (900, 1100), "y": (300, 400)}, {"x": (1000, 1200), "y": (350, 450)})
    table.loc[0, "censored"] = True
    assert coupling.verdict(table, "g", "m", 0.5)[0] == "inconclusive"


def run_tables(steps, accuracy_x, accuracy_y, order_x, order_y) -> dict:
    accuracy = pd.DataFrame(
        [
            {"training_step": s, "region": "all", "axis": axis, "accuracy": value, "accuracy_half_spacing": value}
            for axis, curve in (("x", accuracy_x), ("y", accuracy_y))
            for s, value in zip(steps, curve)
        ]
    )
    representation = pd.DataFrame(
        [
            {"training_step": s, "reference": "checkpoint", "phase_tap": True, "knn_r2_x": ox, "knn_r2_y": oy}
            for s, ox, oy in zip(steps, order_x, order_y)
        ]
    )
    return {"accuracy": accuracy, "representation": representation}


def test_crossings_read_each_arm_and_a_control_only_on_its_axis():
    steps = [100, 200, 400]
    runs = {
        "two_d": {
            "group": "g",
            "arm": "vanilla",
            "seed": 0,
            **run_tables(steps, [0, 0.5, 1], [0, 1, 1], [0, 1, 1], [0, 1, 1]),
        },
        "cx": {
            "group": "g",
            "arm": "control_x",
            "seed": 0,
            **run_tables(steps, [0, 1, 1], [1, 1, 1], [0, 1, 1], [0, 0, 0]),
        },
    }
    table = coupling.crossings(runs)
    assert set(table[table["experiment"] == "cx"]["axis"]) == {"x"}
    x_accuracy = table[
        (table["experiment"] == "two_d") & (table["axis"] == "x") & (table["measure"] == "accuracy within 1 px")
    ]
    assert x_accuracy.set_index("level")["step"].to_dict() == pytest.approx({0.5: 200.0, 0.9: 200 * 2**0.8})


def ci_bumps() -> dict:
    with open(ROOT / "tests" / "params-ci.yaml") as handle:
        return yaml.safe_load(handle)["experiments"]["bumps"]


def study(arms: dict[str, int]) -> dict:
    """A params tree with ``arms[arm]`` seeds of each arm in group g."""
    experiments = {}
    for arm, seeds in arms.items():
        for seed in range(seeds):
            made = copy.deepcopy(ci_bumps())
            made["coupling"] = {"group": "g", "arm": arm}
            made["train"]["seed"] = seed
            experiments[f"{arm}_{seed}"] = made
    return {"experiments": experiments}


def test_a_complete_study_is_accepted():
    params.validate(study({"vanilla": 3, "control_x": 3, "control_y": 3}))


@pytest.mark.parametrize(
    "arms, named",
    [
        ({"vanilla": 3, "control_x": 3}, "0 seed(s) of arm 'control_y'"),
        ({"vanilla": 2, "control_x": 3, "control_y": 3}, "2 seed(s) of arm 'vanilla'"),
    ],
)
def test_a_study_missing_an_arm_or_seeds_is_refused_in_one_line(arms, named):
    with pytest.raises(
        params.ParamsError, match="coupling group 'g' has " + named.replace("(", r"\(").replace(")", r"\)")
    ):
        params.validate(study(arms))


def test_a_phase_study_with_sparse_checkpoints_is_refused_naming_the_key():
    tree = {"experiments": {"b": ci_bumps()}}
    tree["experiments"]["b"]["generation"]["phase_study"] = True
    with pytest.raises(params.ParamsError, match=r"experiments\.b\.train\.checkpoints = 3: the phase study needs"):
        params.validate(tree)
    tree["experiments"]["b"]["train"].update(checkpoints=17)
    params.validate(tree)  # 17 snapshots from step 50 to 200: at most 1.09x apart


def test_the_overlays_are_what_their_script_writes():
    spec = importlib.util.spec_from_file_location(
        "coupling_overlay", ROOT / "workflow" / "scripts" / "coupling_overlay.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for path in script.TARGETS:
        assert (ROOT / path).read_text() == script.render(path), (
            f"{path} is stale: run workflow/scripts/coupling_overlay.py"
        )
        params.load(ROOT / path)


def test_a_generation_scope_experiment_runs_training_and_the_bumps_evaluation_alone():
    from latent_abstractions.pipeline import stage_table

    tree = study({"vanilla": 3, "control_x": 3, "control_y": 3})
    for experiment in tree["experiments"].values():
        experiment["scope"] = "generation"
        for section in ("sample", "probes", "information", "classifier", "fork", "forward_backward"):
            experiment.pop(section, None)
    params.validate(tree)  # the sections it does not run may be left out
    running = {entry.name for entry in stage_table.STAGES if stage_table.experiments_of(entry, tree)}
    assert running == {
        "prepare_data",
        "train_score_model",
        "evaluate_generation",
        "dataset_sheets",
        "plot_generation",
        "plot_loss",
    }


def test_a_measure_an_arm_cannot_take_is_not_measured_and_left_out_of_the_answer():
    table = spreads({"x": (500, 600), "y": (300, 400)}, {"x": (1000, 1200), "y": (350, 450)})
    table.loc[table["arm"] == "control_y", "measured"] = False
    assert coupling.verdict(table, "g", "m", 0.5)[0] == "not measured"
    nan_curve = coupling.crossing(np.array([10, 20]), np.array([np.nan, np.nan]), 0.5)
    assert math.isnan(nan_curve.step)
