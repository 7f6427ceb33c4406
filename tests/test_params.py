"""params.yaml validation: one line naming the key, the value and what is allowed."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import subprocess
import sys

import pytest
import yaml

from latent_abstractions.datasets import bumps
from latent_abstractions.datasets.bumps import MAKE_KEYS as BUMPS_KEYS
from latent_abstractions.pipeline import params
from latent_abstractions.training.train import TrainConfig

from conftest import CI_PARAMS, ROOT, tiny_experiment


def test_default_params_are_valid(default_params):
    assert params.validate(default_params) is default_params


def test_schema_documents_every_key():
    """Every property in the schema carries a description (and leaves a default)."""
    schema = params.load_schema()

    def walk(node, where):
        for key, child in node.get("properties", {}).items():
            if "$ref" not in child and child.get("type") != "object":
                assert "description" in child, f"{where}.{key} lacks a description"
                assert "default" in child, f"{where}.{key} lacks a default"
            walk(child, f"{where}.{key}")

    for name, definition in schema["$defs"].items():
        walk(definition, name)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda p: p["experiments"]["bumps"]["dataset"].update(height=-16),
            "experiments.bumps.dataset.height = -16: must be >= 4",
        ),
        (
            lambda p: p["experiments"]["bumps"]["train"].update(stepz=3),
            "unknown key stepz under experiments.bumps.train; allowed keys:",
        ),
        (
            lambda p: p["experiments"]["bumps"]["sde"].update(kind="subvp"),
            "experiments.bumps.sde.kind = 'subvp': allowed: vp, ve",
        ),
        (
            lambda p: p["experiments"]["bumps"]["sde"].update(kind="ve"),
            "unknown key beta_max, beta_min under experiments.bumps.sde; allowed keys: kind, sigma_max, sigma_min",
        ),
        (lambda p: p["experiments"]["bumps"]["train"].pop("seed"), "experiments.bumps.train lacks seed"),
        (
            lambda p: p["experiments"]["bumps"]["model"].update(taps=["side.3"]),
            "experiments.bumps.model.taps contains 'side.3': the project's U-Net with 2 levels has the taps "
            "down.0, down.1, mid, up.0, up.1",
        ),
        (
            lambda p: p["experiments"]["bumps"]["model"].update(taps=["up.7"]),
            "taps contains 'up.7': the project's U-Net with 2 levels has the taps down.0, down.1, mid, up.0, up.1",
        ),
        (lambda p: p["experiments"]["bumps"]["model"].update(groups=5), "model.groups = 5: must divide"),
        (
            lambda p: p["experiments"]["shapes"]["dataset"]["subset"].update(colour=[1]),
            "unknown key colour under experiments.shapes.dataset.subset; allowed keys: floor_hue",
        ),
        (
            lambda p: p["experiments"]["shapes"]["dataset"]["subset"].update(scale=[8]),
            "experiments.shapes.dataset.subset.scale.0 = 8: must be <= 7",
        ),
        (
            lambda p: p["experiments"]["shapes"]["dataset"]["subset"].update(shape=[]),
            "experiments.shapes.dataset.subset.shape = []: minItems is 1",
        ),
        (
            lambda p: p["experiments"]["bumps"]["dataset"].update(kind="mnist"),
            "experiments.bumps.dataset.kind = 'mnist': allowed: bumps, shapes, shapes3d_file",
        ),
        (
            lambda p: p["experiments"]["bumps"]["dataset"].update(
                split={"kind": "region", "region": "middle", "size": 2}
            ),
            "experiments.bumps.dataset.split.region = 'middle': allowed: centre, corner, stripe",
        ),
        (
            lambda p: p["experiments"].update({"Bad-Name": p["experiments"]["bumps"]}),
            "name 'Bad-Name' under experiments is not allowed; must match",
        ),
    ],
)
def test_bad_value_gives_one_line(default_params, mutate, expected):
    mutate(default_params)
    with pytest.raises(params.ParamsError) as caught:
        params.validate(default_params)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("experiments:\n  bumps: [unclosed\n")
    with pytest.raises(params.ParamsError, match=r"malformed YAML at line \d+"):
        params.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(params.ParamsError, match="params file not found"):
        params.load(tmp_path / "nope.yaml")


def test_unknown_experiment(default_params):
    with pytest.raises(params.ParamsError, match="unknown experiment 'nope'; params.yaml defines: bumps"):
        params.experiment(default_params, "nope")


def run_step(cwd, *args):
    return subprocess.run(
        [sys.executable, "-m", "latent_abstractions.stages.prepare_data", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "edit, args, expected",
    [
        (None, ["--experiment", "nope"], "unknown experiment 'nope'"),
        (
            lambda p: p["experiments"]["bumps"]["dataset"].update(width=-3),
            ["--experiment", "bumps"],
            "experiments.bumps.dataset.width = -3",
        ),
        ("delete", ["--experiment", "bumps"], "params file not found: params.yaml"),
        ("garbage", ["--experiment", "bumps"], "malformed YAML"),
    ],
)
def test_step_cli_stops_before_writing(workdir, default_params, edit, args, expected):
    target = workdir / "params.yaml"
    if edit == "garbage":
        target.write_text("experiments: {bumps: [\n")
    elif edit != "delete":
        if edit is not None:
            edit(default_params)
        target.write_text(yaml.safe_dump(default_params))
    result = run_step(workdir, *args)
    assert result.returncode != 0
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (workdir / "data").exists() and not (workdir / "logs").exists()


@pytest.mark.parametrize("overlay", sorted((ROOT / "workflow" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_paper_overlays_are_valid_params(overlay):
    params.load(overlay)


def test_a_factor_the_dataset_lacks_stops_every_step_before_writing(workdir, default_params):
    params = tiny_experiment(default_params, steps=5)
    params["experiments"]["tiny"]["model"]["condition_on"] = ["x", "colour"]
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    for step in ("prepare_data", "train_score_model"):
        result = subprocess.run(
            [sys.executable, "-m", f"latent_abstractions.stages.{step}", "--experiment", "tiny"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0
        assert result.stderr.strip() == (
            "error: params.yaml: experiments.tiny.model.condition_on contains 'colour': the data set's factors are x, y"
        )
    assert not (workdir / "data").exists()


def test_optional_keys_get_the_schema_default(default_params):
    """One source of defaults: a continuous-centre bumps set without `count` has the
    schema's 256 images, and a shapes set without `subset` keeps every value."""
    bumps_experiment = copy.deepcopy(default_params["experiments"]["bumps"])
    bumps_experiment["dataset"]["centres"] = "continuous"
    shapes_experiment = copy.deepcopy(default_params["experiments"]["shapes"])
    del shapes_experiment["dataset"]["subset"]
    filled = params.validate({"experiments": {"b": bumps_experiment, "s": shapes_experiment}})["experiments"]
    assert filled["b"]["dataset"]["count"] == 256
    spec = filled["b"]["dataset"]
    dataset = bumps.make(**{key: spec[key] for key in BUMPS_KEYS})
    assert len(dataset.images) == 256
    assert filled["s"]["dataset"]["subset"]["shape"] == [0, 1, 2, 3]
    assert filled["s"]["dataset"]["subset"]["orientation"] == list(range(15))


def test_a_required_key_is_not_filled_in(default_params):
    experiment = copy.deepcopy(default_params["experiments"]["bumps"])
    del experiment["train"]["steps"]
    with pytest.raises(params.ParamsError, match="experiments.b.train lacks steps"):
        params.validate({"experiments": {"b": experiment}})


def schema_defaults(definition: str) -> dict:
    properties = params.load_schema()["$defs"][definition]["properties"]
    return {key: entry["default"] for key, entry in properties.items() if "default" in entry}


@pytest.mark.parametrize("function, definition", [(bumps.make, "bumps")])
def test_library_defaults_agree_with_the_schema(function, definition):
    defaults = {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    expected = schema_defaults(definition)
    assert defaults and {name: expected[name] for name in defaults} == defaults


def test_training_defaults_agree_with_the_schema():
    expected = schema_defaults("train")
    for field in dataclasses.fields(TrainConfig):
        if field.default is not dataclasses.MISSING and field.name in expected:
            assert field.default == expected[field.name], field.name


def test_classifier_defaults_agree_with_the_schema():
    from latent_abstractions.classifier.classifier_training import ClassifierConfig

    expected = schema_defaults("classifier")
    for field in dataclasses.fields(ClassifierConfig):
        if field.default is not dataclasses.MISSING and field.name in expected:
            assert field.default == expected[field.name], field.name


def test_the_ci_overlay_is_valid_and_runs_every_experiment_of_the_default(default_params):
    """The end-to-end tests' params: valid, and the same experiments (kinds included) as
    params.yaml, so the tests run every stage the default runs."""
    overlay = params.load(CI_PARAMS)
    kinds = {name: e["dataset"]["kind"] for name, e in overlay["experiments"].items()}
    assert kinds == {name: e["dataset"]["kind"] for name, e in default_params["experiments"].items()}
    assert overlay != default_params


def test_a_ci_overlay_lacking_a_required_key_is_named_in_one_line(tmp_path):
    overlay = yaml.safe_load(CI_PARAMS.read_text())
    del overlay["experiments"]["shapes"]["train"]["steps"]
    broken = tmp_path / "params-ci.yaml"
    broken.write_text(yaml.safe_dump(overlay))
    with pytest.raises(params.ParamsError) as raised:
        params.load(broken)
    message = str(raised.value)
    assert message.startswith(f"{broken}: experiments.shapes.train lacks steps;") and "\n" not in message


def test_a_key_given_twice_in_one_mapping_is_named_with_both_lines(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    pasted = text.replace("      steps: 8000", "      steps: 8000\n      batch_size: 64\n      steps: 500", 1)
    path = tmp_path / "params.yaml"
    path.write_text(pasted)
    first = pasted.splitlines().index("      steps: 8000") + 1
    with pytest.raises(params.ParamsError) as caught:
        params.load(path)
    assert str(caught.value) == f"{path}: key 'steps' appears twice in one mapping (lines {first} and {first + 2})"


@pytest.mark.parametrize(
    "written, value", [(".nan", "nan"), (".inf", "inf"), ("-.inf", "-inf"), (".NaN", "nan"), ("-.Inf", "-inf")]
)
def test_a_non_finite_number_is_refused_wherever_a_number_is_read(tmp_path, default_params, written, value):
    """Keys with bounds (learning_rate, t_end) and a key without (sigma), as YAML spells them."""
    for section, key in (("train", "learning_rate"), ("dataset", "sigma"), ("information", "t_end")):
        edited = copy.deepcopy(default_params)
        edited["experiments"]["bumps"][section][key] = 12345.678
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(edited).replace("12345.678", written))
        with pytest.raises(params.ParamsError) as caught:
            params.load(path)
        assert str(caught.value) == f"params.yaml: experiments.bumps.{section}.{key} = {value}: must be a finite number"


def test_every_lower_end_must_stay_below_its_upper_end(default_params):
    pairs = list(params.ordered_pairs(default_params))
    assert (("experiments", "bumps", "sde"), "beta_min", "beta_max") in pairs
    edited = copy.deepcopy(default_params)
    edited["experiments"]["bumps"]["sde"].update(beta_min=20.0, beta_max=0.1)
    with pytest.raises(params.ParamsError) as caught:
        params.validate(edited)
    assert str(caught.value) == (
        "params.yaml: experiments.bumps.sde.beta_min = 20.0: must be below experiments.bumps.sde.beta_max = 0.1"
    )
    ve = copy.deepcopy(default_params)
    ve["experiments"]["bumps"]["sde"] = {"kind": "ve", "sigma_min": 5.0, "sigma_max": 5.0}
    with pytest.raises(params.ParamsError, match=r"sde.sigma_min = 5.0: must be below .*sigma_max = 5.0$"):
        params.validate(ve)
