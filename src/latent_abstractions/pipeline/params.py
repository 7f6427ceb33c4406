"""Load params.yaml and validate it against params.schema.yaml (package data; workflow/schemas/ links to it).

Every failure becomes a :class:`ParamsError` whose message is one line naming
the key, the value and what is allowed, so that a step stops before any compute.
The schema is the one source of defaults: an optional key left out is filled in
with the schema's default during validation, so the steps never fall back on
defaults of their own.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..core.errors import InputError
from ..datasets.registry import PHASES, factor_names, image_size, kind_of, schema_definitions, serves
from ..diffusion.nets import taps
from ..diffusion.nets.levels import halving_problem
from ..training.snapshot_schedule import checkpoint_steps, snapshot_ratio

# Found from the package (a checkout or an editable install), not the working directory.
SCHEMA_PATH = (
    Path(__file__).resolve().parent.parent / "params.schema.yaml"
)  # package data: found wherever the package is
MAX_ALIASES = 100


class ParamsError(ValueError):
    """params.yaml is missing, malformed or breaks the schema."""


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def _allowed(error: jsonschema.ValidationError) -> str:
    rule, bound = error.validator, error.validator_value
    if rule == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        return f"allowed keys: {', '.join(known)}" if known else "no other keys allowed"
    if rule == "required":
        return "required keys: " + ", ".join(bound)
    if rule == "enum":
        return "allowed: " + ", ".join(map(str, bound))
    if rule in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        symbol = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[rule]
        return f"must be {symbol} {bound}"
    if rule == "type":
        return f"must be of type {bound}"
    if rule in ("minItems", "maxItems", "minProperties"):
        return f"{rule} is {bound}"
    if rule == "pattern":
        return f"must match {bound}"
    return error.message


def _one_line(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = _key_path(error)
        return f"params.yaml: unknown key {', '.join(extra)!s} under {where}; {_allowed(error)}"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return f"params.yaml: {_key_path(error)} lacks {', '.join(missing)}; {_allowed(error)}"
    if "propertyNames" in error.schema_path:
        return f"params.yaml: name {error.instance!r} under {_key_path(error)} is not allowed; {_allowed(error)}"
    return f"params.yaml: {_key_path(error)} = {error.instance!r}: {_allowed(error)}"


def load_schema(schema_path: Path = SCHEMA_PATH) -> dict:
    """The schema, with the registered data set kinds' definitions (read once per file
    version: every validation uses it, and it is never changed)."""
    status = Path(schema_path).stat()
    return _read_schema(str(Path(schema_path).resolve()), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=8)
def _read_schema(path: str, mtime_ns: int, size: int) -> dict:
    with open(path) as handle:
        schema = yaml.safe_load(handle)
    try:
        definitions = schema_definitions()
    except InputError as exc:  # the data set registry could not be read
        raise ParamsError(str(exc)) from None
    clashes = sorted(set(schema["$defs"]) & set(definitions))
    if clashes:
        raise ParamsError(f"data set kind {clashes[0]!r}: its name is taken by a params schema definition")
    schema["$defs"].update(definitions)
    _add_tap_patterns(schema["$defs"])
    return schema


def _add_tap_patterns(definitions: dict) -> None:
    """The tap grammar's patterns (diffusion/nets/taps.py) where the schema names taps: any
    module path for ``model.taps`` (which grammar applies is checked per architecture) and
    ``generation.representation_tap``; the project's U-Net's blocks for ``sample.full_maps``."""
    definitions["model"]["properties"]["taps"]["items"]["pattern"] = taps.MODULE_PATH.pattern
    definitions["generation"]["properties"]["representation_tap"]["pattern"] = taps.MODULE_PATH.pattern
    definitions["sample"]["properties"]["full_maps"]["items"]["pattern"] = taps.SCORE_UNET.pattern


def _filling_defaults(validator_class):
    """The validator class, extended to fill in the default of every optional key that is
    missing (required keys are left missing, so that their absence is reported)."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            required = set(schema.get("required", ()))
            for name, subschema in properties.items():
                if name not in instance and name not in required and "default" in subschema:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties_with_defaults})


DefaultFillingValidator = _filling_defaults(jsonschema.Draft202012Validator)


def validate(params: Any, schema_path: Path = SCHEMA_PATH) -> dict:
    """Fill in the defaults of missing optional keys (in place), then raise ParamsError on
    the first (deepest) schema violation; return params."""
    if not isinstance(params, dict):
        raise ParamsError(f"params.yaml: expected a mapping at the top level, got {type(params).__name__}")
    _check_finite(params)  # before the schema: NaN passes every bound (all comparisons are false)
    validator = DefaultFillingValidator(load_schema(schema_path))
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is not None:
        raise ParamsError(_one_line(error))
    _check_ordered_pairs(params)
    _check_consistency(params)
    _check_phase_schedules(params)
    _check_coupling_groups(params)
    return params


MIN_PHASE_SNAPSHOTS = 16  # snapshots after the warm-up that a phase study needs
MAX_SNAPSHOT_RATIO = 1.5  # the widest step ratio a transition may be bracketed by
MIN_COUPLING_SEEDS = 3


def _check_phase_schedules(params: dict) -> None:
    """A phase study whose snapshots are too few or too far apart to bracket a transition."""
    for name, experiment in params["experiments"].items():
        generation = experiment.get("generation") or {}
        if experiment["scope"] == "exact" or not serves(experiment["dataset"], PHASES):
            continue
        if not generation.get("phase_study", False):
            continue
        train = experiment["train"]
        steps = checkpoint_steps(train["steps"], train["checkpoints"], train["warmup_steps"])
        ratio, after = snapshot_ratio(steps), sum(step > train["warmup_steps"] for step in steps)
        if after < MIN_PHASE_SNAPSHOTS or ratio > MAX_SNAPSHOT_RATIO:
            raise ParamsError(
                f"params.yaml: experiments.{name}.train.checkpoints = {train['checkpoints']}: the phase study needs "
                f"at least {MIN_PHASE_SNAPSHOTS} snapshots after the warm-up at most {MAX_SNAPSHOT_RATIO:g}x apart; "
                f"this schedule gives {after}, up to {ratio:.2f}x apart (more checkpoints, or "
                f"generation.phase_study: false)"
            )


def _check_coupling_groups(params: dict) -> None:
    """Every coupling group has its vanilla model and both 1-D controls, each with enough seeds."""
    seeds: dict[str, dict[str, set]] = {}
    for name, experiment in params["experiments"].items():
        if "coupling" in experiment:
            if experiment["scope"] == "exact":
                raise ParamsError(f"params.yaml: experiments.{name}.coupling: a scope exact experiment trains no model")
            place = experiment["coupling"]
            arms = seeds.setdefault(place["group"], {})
            arms.setdefault(place["arm"], set()).add(experiment["train"]["seed"])
    for group, arms in sorted(seeds.items()):
        for arm in ("vanilla", "control_x", "control_y"):
            found = len(arms.get(arm, ()))
            if found < MIN_COUPLING_SEEDS:
                raise ParamsError(
                    f"params.yaml: coupling group {group!r} has {found} seed(s) of arm {arm!r}; the study needs "
                    f"at least {MIN_COUPLING_SEEDS} (distinct train.seed) of vanilla, control_x and control_y"
                )


def _numbers(node: Any, path: tuple = ()):
    """(key path, value) of every number in a parsed YAML tree (booleans aside)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numbers(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _numbers(value, path + (index,))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def _check_finite(params: dict) -> None:
    """NaN and +-inf (YAML's .nan, .inf, -.inf) are refused wherever a number is read."""
    for path, value in _numbers(params):
        if not math.isfinite(value):
            raise ParamsError(f"params.yaml: {'.'.join(map(str, path))} = {value!r}: must be a finite number")


def ordered_pairs(node: Any, path: tuple = ()):
    """(path of the section, lower key, upper key) for every `<name>_min` beside a
    `<name>_max` in one mapping, at any depth: the lower end must stay below the upper."""
    if not isinstance(node, dict):
        return
    for key in node:
        if isinstance(key, str) and key.endswith("_min") and f"{key[:-4]}_max" in node:
            yield path, key, f"{key[:-4]}_max"
    for key, value in node.items():
        yield from ordered_pairs(value, path + (key,))


def _check_ordered_pairs(params: dict) -> None:
    for path, lower, upper in ordered_pairs(params):
        section = params
        for key in path:
            section = section[key]
        if not section[lower] < section[upper]:
            where = ".".join(map(str, path))
            raise ParamsError(
                f"params.yaml: {where}.{lower} = {section[lower]!r}: must be below {where}.{upper} = {section[upper]!r}"
            )


def _check_consistency(params: dict) -> None:
    """Rules a JSON schema cannot express."""
    for name, experiment in params["experiments"].items():
        dataset = experiment["dataset"]
        height, width = image_size(dataset)
        problem = kind_of(dataset).problem(dataset)
        if problem:
            raise ParamsError(f"params.yaml: experiments.{name}.{problem}")
        if experiment["scope"] == "exact":  # no model: its sections are not read
            continue
        train = experiment["train"]
        kept = train["keep_none"] + train["keep_all"] + train["keep_single"]
        if kept > 1.0 + 1e-9:
            raise ParamsError(
                f"params.yaml: experiments.{name}.train keep_none + keep_all + keep_single = {kept:g}: must be <= 1"
            )
        model = experiment["model"]
        known = factor_names(experiment["dataset"])
        unknown = [name for name in model["condition_on"] if name not in known]
        if unknown:
            raise ParamsError(
                f"params.yaml: experiments.{name}.model.condition_on contains {unknown[0]!r}: "
                f"the data set's factors are {', '.join(known)}"
            )
        if model["kind"] == "trained":  # a diffusers folder brings its own architecture
            _check_architecture(name, model, height, width)


def _check_architecture(name: str, model: dict, height: int, width: int) -> None:
    """The network the pipeline trains: widths, groups, heads, levels and taps that fit."""
    levels = len(model["channel_mults"])
    if model["architecture"] == "score_unet":
        for tap in model["taps"]:
            problem = taps.score_unet_problem(tap, levels)
            if problem:
                raise ParamsError(f"params.yaml: experiments.{name}.model.taps contains {tap!r}: {problem}")
    for level, mult in enumerate(model["channel_mults"]):
        channels = model["base_channels"] * mult
        if channels % model["groups"]:
            raise ParamsError(
                f"params.yaml: experiments.{name}.model.groups = {model['groups']}: "
                f"must divide the {channels} channels of level {level}"
            )
    for level in model["attention_levels"]:
        if level >= levels:
            raise ParamsError(
                f"params.yaml: experiments.{name}.model.attention_levels contains {level}: "
                f"the model has levels 0..{levels - 1}"
            )
    for level in set(model["attention_levels"]) | {levels - 1}:
        channels = model["base_channels"] * model["channel_mults"][level]
        if channels % model["heads"]:
            raise ParamsError(
                f"params.yaml: experiments.{name}.model.heads = {model['heads']}: "
                f"must divide the {channels} channels of attended level {level}"
            )
    problem = halving_problem(height, width, levels)
    if problem:
        raise ParamsError(f"params.yaml: experiments.{name}.dataset image size {height}x{width}: {problem}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the
    last silently: a pasted overlay section would quietly win)."""


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping (its problem names the key and both lines)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    first_line: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if isinstance(key, (str, int, float, bool)) and key in first_line:
            raise _DuplicateKey(
                None,
                None,
                f"key {key!r} appears twice in one mapping (lines {first_line[key]} and {line})",
                key_node.start_mark,
            )
        first_line[key] = line
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def read_yaml(path: Path | str) -> Any:
    """The parsed file, or a ParamsError naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    try:
        text = path.read_text()
        aliases = sum(isinstance(token, yaml.AliasToken) for token in yaml.scan(text))
        if aliases > MAX_ALIASES:  # an alias bomb expands exponentially once validated
            raise ParamsError(f"{path}: {aliases} YAML aliases; at most {MAX_ALIASES} are allowed")
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not a text file (UTF-8)") from None
    except _DuplicateKey as exc:
        raise ParamsError(f"{path}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ParamsError(f"{path}: malformed YAML{where}: {problem}") from None


def load(path: Path | str = "params.yaml", schema_path: Path = SCHEMA_PATH) -> dict:
    path = Path(path)
    params = read_yaml(path)
    try:
        return validate(params, schema_path)
    except ParamsError as exc:  # name the file read when it is another one (an overlay)
        if path.name == "params.yaml":
            raise
        raise ParamsError(str(exc).replace("params.yaml:", f"{path}:", 1)) from None


def experiment(params: dict, name: str) -> dict:
    """The params of one experiment, or a one-line error listing the known names."""
    experiments = params["experiments"]
    if name not in experiments:
        raise ParamsError(f"unknown experiment {name!r}; params.yaml defines: {', '.join(sorted(experiments))}")
    return experiments[name]


def write_planned(config: dict, folder: str) -> str:
    """``config`` as a params file named by its content's hash under ``folder`` (written once,
    atomically): what Snakemake's jobs read, so that they compute with the config it planned."""
    text = yaml.safe_dump(config, sort_keys=True)
    target = Path(folder) / f"params-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_text(text)
        os.replace(temporary, target)
    return str(target)


def load_or_exit(path: Path | str) -> dict:
    """``load`` for a command line: a bad params file ends the process with its one line."""
    try:
        return load(path)
    except ParamsError as exc:
        raise SystemExit(f"error: {exc}") from None
