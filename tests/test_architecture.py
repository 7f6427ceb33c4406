"""The package's import graph: no cycle, counting the imports inside functions too (a lazy
import that hides a cycle is still one), and no import of a layer above (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "src" / "latent_abstractions"


def module_name(path: Path) -> str:
    parts = ("latent_abstractions", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rsplit(".", 1)[0]
            source = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            found |= {
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names
            }
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {module for module in found if module in modules and module not in (name, "latent_abstractions")}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported(name, path, set(paths)) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50 and graph["latent_abstractions.training.train"]  # the graph was read
    assert cycles(graph) == []


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The layers, from the bottom; a module imports only its own layer and those below.
LAYERS = (
    "core",
    "datasets",
    "diffusion",
    "training",
    "store",
    "sampling",
    "analysis",
    "classifier",
    "report",
    "pipeline",
    "stages",
)


def layer_rank(module: str) -> int:
    """The module's layer, as its position in LAYERS; the package's own modules (__main__) sit on top."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else len(LAYERS)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if layer_rank(target) > layer_rank(source)
    )


def test_every_module_sits_in_a_layer():
    outside = [name for name in import_graph() if name.count(".") > 0 and name.split(".")[1] not in LAYERS]
    assert outside == ["latent_abstractions.__main__"]


def test_no_layer_imports_a_layer_above_it():
    assert upward_imports(import_graph()) == []


def test_an_upward_import_is_named():
    graph = {"latent_abstractions.core.errors": {"latent_abstractions.pipeline.params"}}
    assert upward_imports(graph) == ["latent_abstractions.core.errors imports latent_abstractions.pipeline.params"]
