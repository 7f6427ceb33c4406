"""The data set kinds: one registry, filled by the data set modules of this package.

A data set module defines ``KIND = DatasetKind(...)``: its name (``dataset.kind`` in
params.yaml), the schema of its params section, its factor names and image size (known
before any data is made), its sizes before compute, the studies it serves, and how it is
made. Everything else (params checks, budgets, the stage table, prepare_data,
exact_order) asks this registry, so adding a data set is one module here and its test
(docs/extending.md).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from ..core.errors import InputError

# code_closure.py reads this: the registry imports every module of its package at run time,
# so each of them is in the code closure of whatever imports the registry.
DISCOVERS_PACKAGE = True

# The studies a data set can serve (``DatasetKind.studies``).
PHASES = "phases"  # Liang et al.'s accuracy and phases over training: 2-D bumps at (x, y)
EXACT_ORDER = "exact_order"  # the exact decision order: a finite set of categorical factors


def _no_problem(dataset: dict) -> str | None:
    return None


@dataclasses.dataclass(frozen=True)
class DatasetKind:
    """What the pipeline needs to know of one data set family."""

    name: str  # dataset.kind in params.yaml
    schema: dict  # JSON schema of the params.yaml ``dataset`` section of this kind
    factor_names: Callable[[dict], tuple[str, ...]]  # from the dataset section alone
    image_size: Callable[[dict], tuple[int, int]]  # (height, width)
    images: Callable[[dict], tuple[int, int]]  # (images, values per image); (0, 0) where only a file can say
    cardinalities: Callable[[dict], dict[str, int]]  # values per factor, known before data; {} if unknown
    make: Callable[[dict, Path, dict], None]  # (dataset section, folder, provenance): writes the data set
    itemsize: int = 1  # bytes per stored pixel value
    studies: Callable[[dict], frozenset[str]] = lambda dataset: frozenset()
    external_file: str | None = None  # the key naming a file outside the repository that it imports
    problem: Callable[[dict], str | None] = _no_problem  # a rule the schema cannot express, or None
    definitions: dict = dataclasses.field(default_factory=dict)  # schema definitions its schema refers to


@functools.cache
def kinds() -> dict[str, DatasetKind]:
    """Every registered kind by name: the ``KIND`` of each module of this package."""
    found = {}
    for module_info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        try:
            module = importlib.import_module(f"{__package__}.{module_info.name}")
        except Exception as exc:  # a user's data set module with a mistake in it: one line naming it
            problem = f"{type(exc).__name__}: {exc}"
            raise InputError(f"data set module {module_info.name}.py cannot be imported ({problem})") from None
        kind = getattr(module, "KIND", None)
        if isinstance(kind, DatasetKind):
            if kind.name in found:
                raise InputError(f"data set kind {kind.name!r} is registered twice (module {module_info.name})")
            found[kind.name] = kind
    return dict(sorted(found.items()))


def kind_of(dataset: dict | str) -> DatasetKind:
    """The kind of a params ``dataset`` section (or a kind's name); one line listing the
    registered kinds when it is not one of them."""
    name = dataset if isinstance(dataset, str) else dataset.get("kind")
    registered = kinds()
    if name not in registered:
        raise InputError(f"data set kind {name!r} is not registered; registered kinds: {', '.join(registered)}")
    return registered[name]


def serves(dataset: dict, study: str) -> bool:
    """Whether the data set a params section describes serves ``study``."""
    return study in kind_of(dataset).studies(dataset)


def serving(study: str) -> list[str]:
    """The registered kinds that can serve ``study`` (for messages)."""
    return [name for name, kind in kinds().items() if study in kind.studies(_any_section(kind))]


def _any_section(kind: DatasetKind) -> dict:
    """The kind's section with its schema's defaults: what ``studies`` is asked of by default."""
    properties = kind.schema.get("properties", {})
    return {key: entry["default"] for key, entry in properties.items() if "default" in entry}


def factor_names(dataset: dict) -> tuple[str, ...]:
    """The factor names of the data set a params.yaml ``dataset`` section describes."""
    return kind_of(dataset).factor_names(dataset)


def image_size(dataset: dict) -> tuple[int, int]:
    """(height, width) of the images a dataset section describes."""
    return kind_of(dataset).image_size(dataset)


def schema_definitions() -> dict:
    """The params schema's ``dataset`` definition and one definition per kind, named after it."""
    names = list(kinds())
    dataset = {
        "description": "The data set and its train/test split; `kind` picks the family (a registered data set kind).",
        "type": "object",
        "required": ["kind", "split"],
        "properties": {"kind": {"enum": names, "description": "Data set family.", "default": "bumps"}},
        "allOf": [{"if": {"properties": {"kind": {"const": n}}}, "then": {"$ref": f"#/$defs/{n}"}} for n in names],
    }
    shared = {key: value for kind in kinds().values() for key, value in kind.definitions.items()}
    return {"dataset": dataset, **shared, **{name: kind.schema for name, kind in kinds().items()}}
