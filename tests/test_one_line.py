"""Every failure of a step is one line naming the file or key; the unforeseen point at the
log, which holds the traceback; params changed while a step runs keep its outputs unwritten."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
import yaml

from latent_abstractions.core import artifacts
from latent_abstractions.core.errors import InputError
from latent_abstractions.pipeline import cli

from conftest import ROOT

KNOWN = [
    (MemoryError(), "out of memory"),
    (PermissionError(13, "Permission denied", "data/x/out.parquet"), "permission denied on data/x/out.parquet"),
    (FileNotFoundError(2, "No such file or directory", "data/x/in.npy"), "No such file or directory on data/x/in.npy"),
    (IsADirectoryError(21, "Is a directory", "data/x"), "Is a directory on data/x"),
    (json.JSONDecodeError("Expecting value", "{", 1), "malformed JSON (Expecting value, line 1)"),
    (pa.ArrowInvalid("Parquet magic bytes not found"), "unreadable table (Parquet magic bytes not found)"),
    (KeyError("score"), "lacks the key 'score'"),
    (InputError("a bad thing\nsecond line"), "a bad thing"),
    (OSError(28, "No space left on device"), "no space left on the device"),
]


@pytest.mark.parametrize("failure, expected", KNOWN, ids=[type(f).__name__ for f, _ in KNOWN])
def test_each_failure_class_is_one_line(failure, expected):
    with pytest.raises(SystemExit) as ended:
        with cli.one_line_errors("step for experiment e"):
            raise failure
    line = str(ended.value.code)
    assert line.startswith("error: ") and expected in line and "\n" not in line


def test_the_unforeseen_points_at_the_log_which_holds_the_traceback(tmp_path):
    log = tmp_path / "step.log"
    cli._setup_logging(log)
    try:
        with pytest.raises(SystemExit) as ended:
            with cli.one_line_errors("step", log):
                raise ZeroDivisionError("division by zero")
    finally:
        logging.getLogger().handlers.clear()
    line = str(ended.value.code)
    assert "failed unexpectedly (ZeroDivisionError: division by zero)" in line and str(log) in line and "\n" not in line
    assert "Traceback" in log.read_text() and "ZeroDivisionError" in log.read_text()


def test_params_changed_while_a_step_runs_keep_its_outputs_unwritten(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("experiments: {}\n")
    with pytest.raises(InputError, match="the step fails"):
        with cli.params_unchanged(params):
            artifacts.write_json({"a": 1}, tmp_path / "before.json")
            params.write_text("experiments: {a: {}}\n")
            with pytest.raises(InputError, match="params.yaml changed while the step ran"):
                artifacts.write_json({"a": 2}, tmp_path / "after.json")
    assert not artifacts.BEFORE_COMMIT  # the check ends with the step
    assert (tmp_path / "before.json").is_file() and not (tmp_path / "after.json").exists()
    assert not list(tmp_path.glob(".after.json.*"))  # no temporary left behind


def run_step(cwd, *arguments, env=None):
    command = [sys.executable, "-m", "latent_abstractions.stages.prepare_data", "--experiment", "bumps", *arguments]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_environment_faults_get_their_line(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bumps").symlink_to(tmp_path / "nowhere")
    result = run_step(tmp_path)  # from another working directory: the schema comes with the package
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"error: data/bumps is a symbolic link to {tmp_path / 'nowhere'}, which does not exist: remove or mend it"
    ]
    other = tmp_path / "other"
    other.mkdir()
    (other / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    stray = {**os.environ, "WORLD_SIZE": "4"}
    command = [sys.executable, "-m", "latent_abstractions.stages.train_score_model", "--experiment", "bumps"]
    result = subprocess.run(command, cwd=other, capture_output=True, text=True, env=stray, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: WORLD_SIZE=4 is set but RANK")


@pytest.fixture
def saved_shapes(tmp_path):
    from latent_abstractions.datasets import base, shapes

    folder = tmp_path / "dataset"
    base.save(shapes.make(8, {name: [0, 1] for name in shapes.FACTOR_NAMES}), folder, {"step": "test"})
    return folder


def test_images_changed_after_the_data_set_was_made_are_refused(saved_shapes):
    from latent_abstractions.datasets import base

    base.load(saved_shapes)
    images = saved_shapes / "images.npy"
    np.save(images, np.roll(np.load(images), 1, axis=0))  # the same images, rows shifted by one
    with pytest.raises(InputError, match="images.npy does not match the content hash"):
        base.load(saved_shapes)


@pytest.mark.parametrize("damage", ["truncated", "not an array", "factor table cut short"])
def test_a_damaged_data_set_is_one_line_naming_the_file(saved_shapes, damage):
    from latent_abstractions.datasets import base

    images = saved_shapes / "images.npy"
    if damage == "truncated":
        images.write_bytes(images.read_bytes()[:200])
    elif damage == "not an array":
        images.write_text("hello")
    else:
        factors = saved_shapes / "factors.parquet"
        factors.write_bytes(factors.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"(images|factors)\.(npy|parquet)"):
        base.load(saved_shapes)


@pytest.mark.parametrize("key", ["train", "sample", "exact_order"])
def test_a_seed_beyond_32_bits_is_refused_in_one_line(key, default_params):
    from latent_abstractions.pipeline import params

    experiment = "shapes64" if key == "exact_order" else "bumps"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["experiments"][experiment][key]["seed"] = 2**64
    with pytest.raises(
        params.ParamsError, match=rf"{experiment}\.{key}\.seed = 18446744073709551616: must be <= 4294967295"
    ):
        params.validate(raw)


SIZES = [
    (
        "prepare_data",
        "bumps",
        ("dataset", {"height": 256, "width": 256, "spacing_x": 0.01, "spacing_y": 0.01}),
        "dataset",
    ),
    ("sample_trajectories", "bumps", ("sample", {"per_position": 10**9}), "sample.max_conditions, sample.per_position"),
    ("exact_order", "shapes64", ("exact_order", {"samples": 10**8}), "exact_order.samples"),
    ("train_score_model", "bumps", ("model", {"base_channels": 65536}), "model.base_channels"),
]


@pytest.mark.parametrize("step, experiment, change, keys", SIZES, ids=[s[0] for s in SIZES])
def test_sizes_whose_product_exhausts_the_machine_are_refused_naming_the_keys(
    step, experiment, change, keys, default_params, monkeypatch
):
    from latent_abstractions.pipeline import budgets

    monkeypatch.setenv(budgets.MEMORY_VARIABLE, "64")
    chosen = default_params["experiments"][experiment]
    budgets.check(step, chosen, experiment)  # the default fits
    section, values = change
    chosen[section].update(values)
    with pytest.raises(InputError, match=rf"{step} for experiment {experiment}: .* of (memory|disk), .* lower {keys}"):
        budgets.check(step, chosen, experiment)


def test_an_oversized_step_stops_before_writing_anything(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["experiments"]["bumps"]["dataset"].update(height=256, width=256, spacing_x=0.001, spacing_y=0.001)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = run_step(tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: prepare_data for experiment bumps: the data set's images need at least")
    )
    assert not (tmp_path / "data").exists()
