"""Artifact writing: hashes that cite inputs, atomic writes, and a full disk named."""

from __future__ import annotations

import errno

import pytest

from latent_abstractions.core import artifacts
from latent_abstractions.core.errors import InputError


def test_a_directory_hash_ignores_the_engines_bookkeeping_but_not_content(tmp_path):
    """Snakemake puts a timestamp file into directory outputs, DVC does not: artifacts
    citing a trajectory store must hash the same under both engines."""
    store = tmp_path / "store"
    (store / "step_0000").mkdir(parents=True)
    (store / "step_0000" / "part_00000.parquet").write_bytes(b"rows")
    by_dvc = artifacts.input_sha256(store)
    (store / ".snakemake_timestamp").touch()
    assert artifacts.input_sha256(store) == by_dvc
    (store / "step_0000" / "part_00001.parquet").write_bytes(b"more rows")
    assert artifacts.input_sha256(store) != by_dvc


def test_a_failed_write_leaves_the_earlier_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("earlier")
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "earlier" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


@pytest.mark.parametrize(
    "raised",
    [OSError(errno.ENOSPC, "No space left on device"), RuntimeError("IOError: No space left on device (os error 28)")],
)
def test_any_writers_out_of_space_error_names_the_file(tmp_path, raised):
    target = tmp_path / "weights.safetensors"
    with pytest.raises(artifacts.DiskFullError, match=f"no space left on the device while writing {target}$"):
        with artifacts.atomic_path(target):
            raise raised
    assert not any(tmp_path.iterdir())


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError):
        with artifacts.naming_full_disk(tmp_path / "x"):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_a_missing_or_broken_input_table_is_one_line_naming_the_file(tmp_path):
    missing, broken = tmp_path / "probes.parquet", tmp_path / "information.parquet"
    with pytest.raises(InputError, match=r"input table missing: .*probes\.parquet"):
        artifacts.read_input_table(missing)
    broken.write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"information\.parquet: not a readable Parquet table"):
        artifacts.read_input_table(broken)


def test_a_figure_stage_without_its_table_names_the_table(tmp_path, monkeypatch):
    from latent_abstractions.stages import figures, plot_loss

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"input table missing: data/bumps/model/loss\.parquet"):
        figures.draw_group("plot_loss", "bumps", plot_loss.drawn)
