"""Malformed params, generated: every variant stops with one line naming the problem,
before anything runs or is written."""

from __future__ import annotations

import copy
import math
import random
import subprocess
import sys

import pytest
import yaml

from latent_abstractions.pipeline import params

SEED = 20261125


def variants(base: dict) -> list[tuple[str, str]]:
    """(description, file text) pairs: at least 200 malformed params files."""
    rng = random.Random(SEED)
    made: list[tuple[str, str]] = []

    def edit(description: str, change) -> None:
        edited = copy.deepcopy(base)
        change(edited)
        made.append((description, yaml.safe_dump(edited)))

    leaves = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, path + [key])
        else:
            leaves.append(path)

    walk(base, [])

    def setter(path, value):
        def change(edited):
            node = edited
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value

        return change

    def deleter(path):
        def change(edited):
            node = edited
            for key in path[:-1]:
                node = node[key]
            del node[path[-1]]

        return change

    wrong_values = ["text", [1, "a"], {"nested": 1}]  # wrong for every leaf: no type or enum takes them all
    for path in rng.sample(leaves, 80):
        value = rng.choice(wrong_values)
        edit(f"{'.'.join(map(str, path))} = {value!r}", setter(path, value))
    for path in rng.sample(leaves, 50):
        edit(f"unknown key beside {'.'.join(map(str, path))}", setter(path[:-1] + ["no_such_key"], 1))
    definitions = params.load_schema()["$defs"]
    required = [
        p
        for p in leaves
        if len(p) == 4 and p[-1] in definitions.get("bumps" if p[2] == "dataset" else p[2], {}).get("required", [])
    ]
    for path in rng.sample(required, min(30, len(required))):
        edit(f"missing {'.'.join(map(str, path))}", deleter(path))
    numbers = [path for path in leaves if _is_number(_at(base, path))]
    for path in numbers:  # every numeric key, each non-finite value YAML can write
        for value in (math.nan, math.inf, -math.inf):
            edit(f"{'.'.join(map(str, path))} = {value}", setter(path, value))
    for section, lower, upper in params.ordered_pairs(base):  # every ordered pair: reversed, and equal
        low, high = _at(base, [*section, lower]), _at(base, [*section, upper])
        edit(
            f"{lower} above {upper} in {'.'.join(section)}",
            lambda edited, s=section, reversed_pair={lower: high, upper: low}: _at(edited, list(s)).update(
                reversed_pair
            ),
        )
        edit(f"{lower} equal to {upper} in {'.'.join(section)}", setter([*section, lower], high))
    edit(
        "sigma_min above sigma_max",
        setter(["experiments", "bumps", "sde"], {"kind": "ve", "sigma_min": 50.0, "sigma_max": 0.01}),
    )
    for name in ("down.9", "up.7", "middle", "", "down.x"):
        edit(f"tap {name!r}", setter(["experiments", "bumps", "model", "taps"], [name]))
    for name in ("heun2", "euler", "", "SDE"):
        edit(f"sampler {name!r}", setter(["experiments", "bumps", "sample", "sampler"], name))
    for name in ("colour", "x;y", "../x"):
        edit(f"factor {name!r}", setter(["experiments", "bumps", "model", "condition_on"], [name]))
    for name in ("../evil", "a/b", "Upper", "1st", "with space", "x" * 3 + "/"):
        made.append(
            (f"experiment name {name!r}", yaml.safe_dump({"experiments": {name: base["experiments"]["bumps"]}}))
        )
    made += [
        ("a list at the top", "- 1\n- 2\n"),
        ("a string at the top", "just text\n"),
        ("empty", ""),
        ("a number", "42\n"),
        ("unclosed bracket", "experiments: [\n"),
        ("tab indentation", "a:\n\tb: 1\n"),
        ("python object tag", "experiments: !!python/object/apply:os.system ['echo pwned']\n"),
        ("python name tag", "experiments: !!python/name:os.system\n"),
        (
            "alias bomb",
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(12)
            ),
        ),
    ]
    made += [(f"binary junk {i}", bytes(rng.randrange(256) for _ in range(64)).decode("latin-1")) for i in range(25)]
    return made


def _at(node, path):
    for key in path:
        node = node[key]
    return node


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_at_least_200_variants_with_every_numeric_key_non_finite_and_every_ordered_pair_reversed(default_params):
    made = variants(default_params)
    descriptions = {description for description, _ in made}
    assert len(made) >= 200
    assert "experiments.bumps.train.learning_rate = nan" in descriptions
    assert "beta_min above beta_max in experiments.shapes.sde" in descriptions
    print(f"{len(made)} malformed params variants")


def test_every_variant_stops_with_one_line(default_params, tmp_path):
    tracebacks, accepted = [], []
    for index, (description, text) in enumerate(variants(default_params)):
        path = tmp_path / f"params_{index}.yaml"
        path.write_bytes(
            text.encode("latin-1", errors="replace") if description.startswith("binary") else text.encode()
        )
        try:
            params.load(path)
        except params.ParamsError as exc:
            message = str(exc)
            assert "\n" not in message and message, description
            continue
        except Exception as exc:  # anything else is a traceback for the user
            tracebacks.append(f"{description}: {type(exc).__name__}: {exc}")
            continue
        accepted.append(description)
    assert not tracebacks, tracebacks[:5]
    assert not accepted, accepted[:5]


@pytest.mark.parametrize("index", [0, 61, 101, 150, -1, -30])
def test_a_stage_refuses_before_writing_anything(default_params, workdir, index):
    description, text = variants(default_params)[index]
    (workdir / "params.yaml").write_bytes(text.encode("latin-1", errors="replace"))
    result = subprocess.run(
        [sys.executable, "-m", "latent_abstractions.stages.prepare_data", "--experiment", "bumps"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, description
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: "), (description, result.stderr)
    assert not (workdir / "data").exists() and not (workdir / "logs").exists(), description
