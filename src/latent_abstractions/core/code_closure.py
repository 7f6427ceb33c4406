"""The code a pipeline stage runs: the import closure of its module inside the package.

A stage's code dependencies are exactly the package modules that its command's module
imports, directly or through others, found by reading the source (every ``import``
statement, including those inside functions), plus the ``__init__.py`` of each package
on the way, which Python runs on import. Editing any of them reruns the stage; editing
anything else does not. The closure's hash goes into every artifact's provenance.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = __name__.split(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parent.parent
SOURCE_ROOT = PACKAGE_DIR.parent  # the folder holding the package (src/)


def module_file(module: str) -> Path:
    """The source file of a package module, or a ValueError naming the missing module."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        raise ValueError(f"{module}: not a module of {PACKAGE}")
    base = SOURCE_ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"module {module} does not exist (no {base}.py or {base}/__init__.py)")


def _is_module(module: str) -> bool:
    try:
        module_file(module)
    except ValueError:
        return False
    return True


def _discovers_package(tree: ast.Module) -> bool:
    """Whether a module sets ``DISCOVERS_PACKAGE = True``: it imports every module of its
    package at run time (a registry), which no import statement names."""
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == "DISCOVERS_PACKAGE" for target in node.targets)
        and isinstance(node.value, ast.Constant)
        and node.value.value is True
        for node in tree.body
    )


def _package_modules(module: str) -> set[str]:
    """The modules of the package that ``module`` belongs to."""
    package = module.rpartition(".")[0]
    folder = module_file(module).parent
    return {f"{package}.{path.stem}" for path in folder.glob("*.py") if path.stem != "__init__"}


def _imports(module: str) -> set[str]:
    """Package modules named by the import statements of ``module``."""
    path = module_file(module)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found = _package_modules(module) - {module} if _discovers_package(tree) else set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            # `from pkg import name`: name is a submodule, or an attribute of pkg.
            found |= {f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")}
    return found


def _with_parents(module: str) -> set[str]:
    """The module and every package above it: importing a.b.c runs a and a.b first."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@functools.cache
def closure(module: str) -> tuple[str, ...]:
    """Every package module that running ``module`` imports, itself included, sorted."""
    module_file(module)  # a missing module fails here, by name
    seen: set[str] = set()
    pending = _with_parents(module)
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for imported in _imports(current):
            pending |= _with_parents(imported) - seen
    return tuple(sorted(seen))


def closure_files(module: str, root: Path | None = None) -> list[str]:
    """The closure as file paths relative to ``root`` (default: the folder above src/),
    in POSIX form, as Snakemake rules and dvc.yaml list them."""
    root = root or SOURCE_ROOT.parent
    return sorted(module_file(m).relative_to(root).as_posix() for m in closure(module))


@functools.cache
def code_sha256(module: str) -> str:
    """sha256 over the closure's files (their package-relative names and bytes)."""
    digest = hashlib.sha256()
    for name in closure(module):
        path = module_file(name)
        digest.update(path.relative_to(SOURCE_ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()
