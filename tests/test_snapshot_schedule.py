"""Where training keeps its snapshots, and how the steps after it find them."""

from __future__ import annotations

import re

import pytest

from latent_abstractions.core.errors import InputError
from latent_abstractions.training.snapshot_schedule import (
    checkpoint_steps,
    snapshot_name,
    snapshot_ratio,
    snapshots_in,
)


def test_the_schedule_is_log_spaced_from_the_warm_up_and_ends_at_the_last_step():
    steps = checkpoint_steps(8000, 17, start=50)
    assert steps[0] == 50 and steps[-1] == 8000 and len(steps) == 17
    assert snapshot_ratio(steps) <= 1.4


def test_snapshots_are_listed_in_training_order_not_name_order(tmp_path):
    for step in (900, 10000, 50):
        (tmp_path / snapshot_name(step)).write_bytes(b"")
    assert [path.name for path in snapshots_in(tmp_path)] == [
        "step_00000050.safetensors",
        "step_00000900.safetensors",
        "step_00010000.safetensors",
    ]


@pytest.mark.parametrize("stray", ["step_00000100 (copy).safetensors", "step_00000100.safetensors.bak", "notes.txt"])
def test_a_stray_file_among_the_snapshots_is_named(tmp_path, stray):
    (tmp_path / snapshot_name(100)).write_bytes(b"")
    (tmp_path / stray).write_bytes(b"")
    with pytest.raises(InputError, match=rf"holds '{re.escape(stray)}', which is not a training snapshot"):
        snapshots_in(tmp_path)


def test_no_snapshots_is_one_line(tmp_path):
    with pytest.raises(InputError, match="no checkpoints in"):
        snapshots_in(tmp_path / "absent")
    with pytest.raises(InputError, match="no checkpoints in"):
        snapshots_in(tmp_path)


def test_the_engines_and_writers_hidden_files_are_not_snapshots_nor_strays(tmp_path):
    # Snakemake touches a timestamp in every directory output; a killed write leaves its temporary.
    (tmp_path / snapshot_name(100)).write_bytes(b"")
    (tmp_path / ".snakemake_timestamp").write_bytes(b"")
    (tmp_path / ".step_00000200.safetensors.x1y2.tmp").write_bytes(b"")
    assert [path.name for path in snapshots_in(tmp_path)] == ["step_00000100.safetensors"]


def test_two_snapshots_of_one_step_are_refused(tmp_path):
    (tmp_path / snapshot_name(100)).write_bytes(b"")
    (tmp_path / "step_100.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="holds two snapshots of step 100"):
        snapshots_in(tmp_path)
