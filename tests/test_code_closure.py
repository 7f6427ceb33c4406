"""A stage's code dependencies are the import closure of its module: nothing it runs is
missing, a missing module is named, and the closures stay small by structure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from latent_abstractions.core import code_closure
from latent_abstractions.pipeline import stage_table

from conftest import ROOT

IMPORTED = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(getattr(m, "__file__", None) or "" for n, m in sys.modules.items()
                        if n.split(".")[0] == "latent_abstractions")))
"""


def imported_files(module: str) -> set[str]:
    """The package files that importing ``module`` actually loads, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED, module], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return {str(__import__("pathlib").Path(f).resolve().relative_to(ROOT)) for f in json.loads(result.stdout) if f}


@pytest.mark.parametrize("entry", [*stage_table.STAGES, stage_table.REPORT], ids=lambda s: s.name)
def test_no_code_dependency_is_missing(entry):
    declared = set(entry.code())
    missing = imported_files(entry.command_module) - declared
    assert not missing, f"{entry.name}: runs {sorted(missing)} but does not declare them"


def test_every_module_in_the_table_exists():
    for entry in stage_table.STAGES:
        assert code_closure.module_file(entry.command_module).is_file(), entry.module


def test_a_missing_module_is_named():
    ghost = stage_table.Stage("ghost", "no_such_stage", inputs=(), outputs=("x",), params=())
    with pytest.raises(ValueError, match="latent_abstractions.stages.no_such_stage does not exist"):
        ghost.code()


def test_relative_imports_inside_functions_are_followed():
    # plot_probes imports its figure group at module level; checkpoints is imported by the sampler stage only.
    assert "latent_abstractions.report.plots.probes" in code_closure.closure("latent_abstractions.stages.plot_probes")
    assert "latent_abstractions.diffusion.checkpoints" in code_closure.closure(
        "latent_abstractions.stages.sample_trajectories"
    )


def test_closures_are_small_by_structure():
    """A table format and the analyses of tables do not pull in the network."""
    network = "latent_abstractions.diffusion.nets.unet"
    for module in (
        "latent_abstractions.store.trajectories",
        "latent_abstractions.stages.fit_probes",
        "latent_abstractions.stages.prepare_data",
        "latent_abstractions.stages.plot_probes",
    ):
        assert network not in code_closure.closure(module), module
    assert "latent_abstractions.datasets.base" not in code_closure.closure("latent_abstractions.diffusion.nets.unet")


def test_code_hash_names_the_closure_content():
    first = code_closure.code_sha256("latent_abstractions.stages.fit_probes")
    assert len(first) == 64
    assert first != code_closure.code_sha256("latent_abstractions.stages.prepare_data")


FIGURE_GROUPS = {
    "dataset_sheets": "dataset",
    "plot_probes": "probes",
    "plot_information": "information",
    "plot_samples": "samples",
    "plot_generation": "generation",
    "plot_proxies": "proxies",
    "plot_loss": "loss",
}


def test_each_figure_stage_carries_its_own_group_alone():
    """Editing one figure group's drawing code reruns that group's stage only."""
    for stage, group in FIGURE_GROUPS.items():
        closure = code_closure.closure(f"latent_abstractions.stages.{stage}")
        drawn = {name.rsplit(".", 1)[1] for name in closure if name.startswith("latent_abstractions.report.plots.")}
        assert drawn - {"layout", "images"} == {group}, stage
        assert "latent_abstractions.report.plotting" not in closure
        # Only the groups that show images carry the pixel conversion.
        assert ("latent_abstractions.core.pixels" in closure) == (group in {"dataset", "samples"}), stage


def test_a_registry_carries_every_module_of_its_package():
    """The data set registry imports its package's modules at run time, which no import
    statement names: its closure holds them, so editing a data set reruns what checks params."""
    closure = code_closure.closure("latent_abstractions.datasets.registry")
    assert {"latent_abstractions.datasets.bumps", "latent_abstractions.datasets.shapes3d_file"} <= set(closure)
    assert "latent_abstractions.stages.prepare_data" not in closure
