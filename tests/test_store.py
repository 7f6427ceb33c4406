"""The trajectory store: its layout and schema (store_layout.py), streaming and resuming
(store.py), the reader's selections and refusals, and other engines opening it."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from latent_abstractions.core.artifacts import PROVENANCE_KEY, canonical_json, params_sha256, stage_code_sha256
from latent_abstractions.core.errors import StoreError
from latent_abstractions.datasets import base, bumps
from latent_abstractions.diffusion import checkpoints
from latent_abstractions.pipeline import params as params_module
from latent_abstractions.pipeline.cli import run_step
from latent_abstractions.stages.sample_trajectories import sample_step
from latent_abstractions.store import store_layout, trajectories
from latent_abstractions.store.store import StoreWriter, partial_path
from latent_abstractions.store.store_layout import LAYOUT_KEY, SCHEMA_VERSION, StoreLayout
from latent_abstractions.store.trajectories import open_store

from conftest import ROOT, perturb, tiny_experiment

EXPERIMENT = "tiny"


def make_workdir(
    work: Path,
    ci_params: dict,
    sample: dict | None = None,
    fork: dict | None = None,
    forward_backward: dict | None = None,
) -> Path:
    """A working directory with params.yaml (experiment `tiny`: 8x8 bumps, a small U-Net), the
    schema, a data set with a train/test split and perturbed random weights in place of training."""
    params = tiny_experiment(ci_params)
    experiment = params["experiments"][EXPERIMENT]
    experiment["model"]["taps"] = ["down.1", "mid"]
    experiment["sample"].update(
        {
            "steps": 12,
            "per_position": 2,
            "batch_size": 8,
            "eval_block": 8,
            "record": {"kind": "log_snr", "count": 3},
            **(sample or {}),
        }
    )
    experiment["fork"].update(
        {
            "parents": 3,
            "branches": 3,
            "steps": 12,
            "batch_size": 4,
            "eval_block": 4,
            "at": {"kind": "log_snr", "count": 3},
            **(fork or {}),
        }
    )
    experiment["forward_backward"].update(
        {
            "images": 3,
            "repeats": 2,
            "steps": 12,
            "batch_size": 4,
            "eval_block": 4,
            "at": {"kind": "log_snr", "count": 3},
            **(forward_backward or {}),
        }
    )
    (work / "workflow" / "schemas").mkdir(parents=True, exist_ok=True)
    (work / "workflow" / "schemas" / "params.schema.yaml").write_text(
        (ROOT / "workflow" / "schemas" / "params.schema.yaml").read_text()
    )
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    data = bumps.make(height=8, width=8, sigma=1.0, spacing_x=2.0, spacing_y=2.0, margin=1.0)
    data.factors["split"] = np.where(np.arange(len(data.factors)) % 3 == 0, "test", "train")
    base.save(data, work / "data" / EXPERIMENT / "dataset", {"step": "test"})
    architecture = checkpoints.architecture_from_params(experiment["model"], data.factor_table, (1, 8, 8))
    torch.manual_seed(0)
    model = perturb(checkpoints.build_model(architecture))
    checkpoints.save(
        model, architecture, work / "data" / EXPERIMENT / "model" / "weights.safetensors", trained_as(work)
    )
    return work


def trained_as(work: Path) -> dict:
    """The provenance train_score_model would give weights for the work's params (raw
    sections where the params are bad on purpose: the step stops at them first)."""
    try:
        section = experiment_params(work)
    except params_module.ParamsError:
        section = yaml.safe_load((work / "params.yaml").read_text())["experiments"][EXPERIMENT]
    sections = {key: section[key] for key in checkpoints.TRAINING_SECTIONS}
    return {"experiment": EXPERIMENT, "params": sections, "params_sha256": params_sha256(sections), "inputs": {}}


def experiment_params(work: Path) -> dict:
    return params_module.experiment(
        params_module.load(work / "params.yaml", work / params_module.SCHEMA_PATH), EXPERIMENT
    )


def run_in(work: Path, monkeypatch, step=sample_step) -> None:
    monkeypatch.chdir(work)
    step(EXPERIMENT, experiment_params(work))


def store_bytes(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


@pytest.fixture
def sampled(tmp_path, ci_params, monkeypatch) -> Path:
    work = make_workdir(tmp_path, ci_params)
    run_in(work, monkeypatch)
    return work / "data" / EXPERIMENT / "trajectories"


# --- layout and schema ---------------------------------------------------------------------------


def test_one_directory_per_step_one_file_per_batch_and_nothing_else(sampled):
    store = open_store(sampled)
    assert not partial_path(sampled).exists()
    assert store.steps == [0, 6, 12] and store.layout["trajectories"] == 18  # 3 x 3 lattice x 2
    assert sorted(p.relative_to(sampled).as_posix() for p in sampled.rglob("*") if p.is_file()) == sorted(
        f"step_{s:04d}/part_{b:05d}.parquet" for s in (0, 6, 12) for b in range(3)
    )  # 18 in batches of 8
    assert store.times[0] == pytest.approx(1.0) and store.times[-1] == pytest.approx(0.001)


def test_every_file_has_the_documented_schema_and_metadata(sampled):
    layout = trajectories.read_layout(sampled)
    expected = store_layout.schema_for(layout)
    assert expected.names[:6] == ["trajectory", "step", "t", "log_snr", "requested_x", "requested_y"]
    vectors = {"state", "eps.cond", "eps.uncond", "denoised.cond", "denoised.uncond"} | {
        f"{kind}.{p}.{tap}"
        for kind in ("act", "map")
        for p in ("cond", "uncond", "random")
        for tap in ("down.1", "mid")
    }
    assert set(store_layout.feature_columns_of(layout)) == vectors
    for path in sampled.rglob("*.parquet"):
        schema = pq.read_schema(path)
        assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in expected]
        assert schema.field("act.cond.mid").type.list_size == 16  # channels
        assert schema.field("map.cond.mid").type.list_size == 16 * 4 * 4  # 4 x 4 cells of a 4 x 4 map
        metadata = pq.read_metadata(path)
        assert metadata.num_row_groups >= 1 and metadata.row_group(0).column(0).statistics.has_min_max
    assert layout["tap_shapes"] == {"down.1": [16, 4, 4], "mid": [16, 4, 4]}
    provenance = json.loads(pq.read_schema(path).metadata[PROVENANCE_KEY])
    assert layout["schema_version"] == SCHEMA_VERSION and len(layout["checkpoint_sha256"]) == 64
    assert layout["seed"] == 1 and layout["guidance"] == 1.0 and layout["condition"] == ["x", "y"]
    for key in ("params_sha256", "code_sha256", "package_version", "git_commit"):
        assert provenance[key], key
    assert provenance["code_sha256"] == stage_code_sha256("sample_trajectories")
    assert list(provenance["inputs"]) == ["data/tiny/model/weights.safetensors"]


def test_the_layout_round_trips_through_its_json_form(sampled):
    stored = pq.read_metadata(next(sampled.rglob("*.parquet"))).metadata[LAYOUT_KEY]
    spec = StoreLayout.from_json(json.loads(stored))
    assert canonical_json(spec.to_json()).encode() == stored
    assert StoreLayout.from_json(spec.to_json()) == spec
    assert spec.rows == {0: 18, 6: 18, 12: 18} and spec.parts == {0: 3, 6: 3, 12: 3}
    assert [f.name for f in spec.factors] == ["x", "y"] and spec.factor_names == ("x", "y")
    assert spec.extra["taps"] == ["down.1", "mid"] and spec.extra["schema_version"] == SCHEMA_VERSION
    assert spec.time_of(12) == (spec.recorded_t[2], spec.recorded_log_snr[2])
    assert open_store(sampled).spec == spec


def test_a_layout_refuses_extra_fields_that_shadow_its_own():
    with pytest.raises(ValueError, match="layout extra repeats the field kind"):
        StoreLayout("forks", (1, 2, 2), (), (), (0,), (1.0,), (0.0,), {0: 1}, {0: 1}, "", extra={"kind": "forks"})


def test_other_engines_open_the_store_unchanged(sampled):
    import pandas as pd

    frame = pd.read_parquet(sampled)
    assert len(frame) == 18 * 3 and sorted(frame["step"].unique()) == [0, 6, 12]
    assert pq.read_table(sampled).num_rows == 18 * 3
    try:
        import polars as pl
    except ImportError:
        pytest.skip("polars is not installed (test-only extra: pip install polars duckdb)")
    assert pl.read_parquet(sampled).filter(pl.col("step") == 6).height == 18
    try:
        import duckdb
    except ImportError:
        pytest.skip("duckdb is not installed (test-only extra: pip install polars duckdb)")
    rows = duckdb.sql(
        f"select step, count(*), max(len(\"act.cond.mid\")) from read_parquet('{sampled}/**/*.parquet') "
        "group by step order by step"
    ).fetchall()
    assert rows == [(0, 18, 16), (6, 18, 16), (12, 18, 16)]


# --- reading -------------------------------------------------------------------------------------


def test_select_projects_columns_and_pushes_predicates_down(sampled):
    store = open_store(sampled, "trajectories")
    everything = store.table()
    chosen = store.select(steps=[0, 12], features=["act.uncond.mid", "state"], factors=["x"])
    assert chosen.features["act.uncond.mid"].shape == (2, 18, 16) and chosen.features["state"].shape == (2, 18, 64)
    assert list(chosen.keys["trajectory"]) == list(range(18)) and set(chosen.factors) == {"x"}
    at_last = everything.filter(everything.column("step").to_numpy() == 12)
    assert np.array_equal(chosen.features["state"][1], trajectories.vector_column(at_last, "state"))
    assert np.array_equal(chosen.factors["x"], at_last.column("requested_x").to_numpy())
    narrow = store.select(
        steps=[6], features=["map.cond.mid"], where={"requested_x": [3.0], "requested_y": (2.0, 6.0)}, backend="torch"
    )
    assert isinstance(narrow.features["map.cond.mid"], torch.Tensor)
    assert narrow.features["map.cond.mid"].shape == (1, 4, 256)  # x = 3, y in {3, 5}, 2 trajectories each
    assert set(store.table([6], ["act.cond.mid"]).column_names) == {"trajectory", "step", "act.cond.mid"}
    assert store.feature("act.random.down.1", 6).shape == (18, 16)
    assert store.requested_factors()["y"].shape == (18,)
    assert store.final_images().shape == (18, 1, 8, 8)


@pytest.mark.parametrize(
    "ask, message",
    [
        ({"schema_version": 1}, "store schema version 2, expected 1"),
        ({"checkpoint_sha256": "0" * 64}, "made from checkpoint sha256"),
        ({"code_sha256": "f" * 64}, "made by code sha256"),
        ({"kind": "forks"}, "a trajectories store, expected a forks store"),
    ],
)
def test_a_store_other_than_asked_is_refused_in_one_line(sampled, ask, message):
    kind = ask.pop("kind", None)
    with pytest.raises(StoreError, match=message) as caught:
        open_store(sampled, kind, **ask)
    assert "\n" not in str(caught.value)
    layout = trajectories.read_layout(sampled)
    open_store(
        sampled,
        "trajectories",
        checkpoint_sha256=layout["checkpoint_sha256"],
        code_sha256=stage_code_sha256("sample_trajectories"),
    )


def test_truncated_corrupted_or_missing_files_are_named(sampled):
    victim = sampled / "step_0006" / "part_00001.parquet"
    original = victim.read_bytes()
    victim.write_bytes(original[: len(original) // 2])
    with pytest.raises(StoreError, match=f"{victim}: corrupted or truncated Parquet file") as caught:
        open_store(sampled)
    assert "\n" not in str(caught.value)
    flipped = bytearray(original)
    start = pq.read_metadata(victim.with_name("part_00000.parquet")).row_group(0).column(8).data_page_offset
    for offset in range(start + 64, start + 96):  # inside the first data page of a vector column
        flipped[offset] ^= 0xFF
    victim.write_bytes(bytes(flipped))
    store = open_store(sampled)  # the footer is intact
    with pytest.raises(StoreError, match=f"{victim}: corrupted or truncated Parquet file"):
        store.select(steps=[6])
    victim.unlink()
    with pytest.raises(StoreError, match="2 files, the layout says 3; the store is incomplete"):
        open_store(sampled)


def test_a_part_copied_over_its_neighbour_is_refused(sampled):
    step = sampled / "step_0006"
    shutil.copy(step / "part_00000.parquet", step / "part_00001.parquet")  # same run, same row count
    with pytest.raises(StoreError, match="part_00001.parquet: holds part 0, not part 1 of its step"):
        open_store(sampled)


def test_a_file_with_another_schema_or_from_another_run_is_refused(sampled):
    victim = sampled / "step_0012" / "part_00002.parquet"
    table = pq.read_table(victim)
    pq.write_table(table.drop_columns(["act.cond.mid"]), victim)
    with pytest.raises(StoreError, match=f"{victim}: its schema is not the one its layout describes"):
        open_store(sampled)
    metadata = dict(table.schema.metadata)
    metadata[PROVENANCE_KEY] = metadata[PROVENANCE_KEY].replace(b'"step"', b'"stage"')
    pq.write_table(table.replace_schema_metadata(metadata), victim)
    with pytest.raises(StoreError, match=f"{victim}: from another run than the rest of the store"):
        open_store(sampled)


def test_nan_in_a_store_stops_analysis_with_one_line(tmp_path):
    layout = {
        "kind": "forward_backward",
        "image_shape": [1, 2, 2],
        "factors": [],
        "factor_names": ["x"],
        "recorded_steps": [3],
        "recorded_t": [0.5],
        "recorded_log_snr": [0.0],
        "repeats": 1,
        "rows": {"3": 4},
        "parts": {"3": 2},
        "checkpoint_sha256": "c" * 64,
    }
    writer = StoreWriter(tmp_path / "store", layout, {"step": "test", "code_sha256": "a" * 64})
    assert writer.start() == 0
    for part in range(2):
        image = np.ones((2, 4), np.float32)
        if part == 1:
            image[1, 2] = np.nan
        writer.write_batch(
            part,
            {
                3: (
                    part,
                    {
                        "source": [2 * part, 2 * part + 1],
                        "step": [3, 3],
                        "t": [0.5, 0.5],
                        "log_snr": [0.0, 0.0],
                        "repeat": [0, 0],
                        "split": ["train", "test"],
                        "source_x": [1.0, 2.0],
                        "image": image,
                    },
                )
            },
        )
    store = open_store(writer.finish())
    bad = tmp_path / "store" / "step_0003" / "part_00001.parquet"
    with pytest.raises(StoreError, match=f"{bad}: column image holds NaN or inf \\(source 3, repeat 0\\)"):
        store.select()
    with pytest.raises(StoreError, match="holds NaN"):
        trajectories.check_finite(tmp_path / "store")
    assert np.isnan(store.select(check_finite=False).features["image"]).sum() == 1


def test_an_incomplete_store_is_not_a_store(tmp_path):
    partial = tmp_path / "trajectories.partial"
    partial.mkdir()
    with pytest.raises(StoreError, match="an interrupted run left .*trajectories.partial; run the stage again"):
        open_store(tmp_path / "trajectories")


# --- streaming, resuming, determinism ------------------------------------------------------------


def test_a_killed_run_resumes_at_the_first_unfinished_batch(tmp_path, ci_params, monkeypatch, sampled):
    work = make_workdir(tmp_path / "killed", ci_params)
    target = work / "data" / EXPERIMENT / "trajectories"
    written = []
    original = StoreWriter.write_batch

    def dies_in_batch_two(self, batch, parts):
        if batch == 1:  # the first of its files written, then killed
            step, (part, table) = sorted(parts.items())[0]
            self._write(self.table(table), step, part)
            raise KeyboardInterrupt
        written.append(batch)
        original(self, batch, parts)

    monkeypatch.setattr(StoreWriter, "write_batch", dies_in_batch_two)
    with pytest.raises(KeyboardInterrupt):
        run_in(work, monkeypatch)
    assert not target.exists() and (partial_path(target) / "_progress.json").is_file() and written == [0]
    (partial_path(target) / "step_0000" / ".part_00002.parquet.tmp").write_bytes(b"half a file")
    resumed = []
    monkeypatch.setattr(
        StoreWriter, "write_batch", lambda self, batch, parts: (resumed.append(batch), original(self, batch, parts))
    )
    run_in(work, monkeypatch)
    assert resumed == [1, 2] and not partial_path(target).exists()
    assert store_bytes(target) == store_bytes(sampled)  # as if never killed, byte for byte


def test_a_partial_store_of_other_params_is_discarded(tmp_path, ci_params, monkeypatch, caplog):
    work = make_workdir(tmp_path, ci_params)
    target = work / "data" / EXPERIMENT / "trajectories"
    stale = partial_path(target)
    (stale / "step_0000").mkdir(parents=True)
    (stale / "step_0000" / "part_00000.parquet").write_bytes(b"other run")
    (stale / "_progress.json").write_text(
        json.dumps({"fingerprint": "other", "done": 1, "written": ["step_0000/part_00000.parquet"]})
    )
    run_in(work, monkeypatch)
    assert "discarding" in caplog.text
    open_store(target).verify()


def test_same_seed_same_tensors_whatever_the_batch_size(tmp_path, ci_params, monkeypatch, sampled):
    work = make_workdir(tmp_path / "other", ci_params, sample={"batch_size": 5})
    run_in(work, monkeypatch)
    other = open_store(work / "data" / EXPERIMENT / "trajectories")
    assert len(other.files(0)) == 4
    reference = open_store(sampled).select()
    again = other.select()
    for name, values in reference.features.items():
        assert np.array_equal(values, again.features[name]), name


# --- bad input: one line, nothing written --------------------------------------------------------


@pytest.mark.parametrize(
    "sample, expected",
    [
        ({"record": {"kind": "times", "times": [1.5]}}, "sample.record.times.0 = 1.5: must be <= 1"),
        ({"record": {"kind": "times", "times": [0.0005]}}, "sample.record.times: 0.0005 is outside the sampled range"),
        ({"record": {"kind": "steps", "steps": [13]}}, "sample.record.steps: 13 is not a step of the 12-step grid"),
        ({"record": {"kind": "times", "times": [0.5, 0.51]}}, "fall on the same step"),
        ({"full_maps": ["up.5"]}, "unknown feature tap up.5; this model has"),
        ({"sampler": "euler"}, "sample.sampler = 'euler': allowed: sde, pc, ode, heun, ddim"),
        ({"condition": ["x", "colour"]}, "sample.condition lists unknown factor colour; the model knows: x, y"),
        ({"guidance": -0.5}, "sample.guidance = -0.5: must be >= 0"),
    ],
)
def test_bad_sampling_input_stops_with_one_line_and_writes_nothing(
    tmp_path, ci_params, monkeypatch, capsys, sample, expected
):
    work = make_workdir(tmp_path, ci_params, sample=sample)
    monkeypatch.chdir(work)
    with pytest.raises(SystemExit) as caught:
        run_step("sample_trajectories", sample_step, ["--experiment", EXPERIMENT])
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert not (work / "data" / EXPERIMENT / "trajectories").exists()
    assert not partial_path(work / "data" / EXPERIMENT / "trajectories").exists()


def test_store_errors_stop_a_stage_with_one_line(tmp_path, monkeypatch):
    def analysis(experiment, params):
        open_store(tmp_path / "missing")

    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as caught:
        run_step("fit_probes", analysis, ["--experiment", "bumps", "--log", str(tmp_path / "log")])
    assert str(caught.value) == f"error: {tmp_path / 'missing'}: no trajectory store there"


def test_writer_refuses_a_batch_out_of_order(tmp_path):
    layout = copy.deepcopy(
        {
            "kind": "forks",
            "image_shape": [1, 1, 1],
            "factors": [],
            "factor_names": [],
            "recorded_steps": [0],
            "recorded_t": [1.0],
            "recorded_log_snr": [-10.0],
            "branches": 1,
            "rows": {"0": 1},
            "parts": {"0": 1},
            "checkpoint_sha256": "",
        }
    )
    writer = StoreWriter(tmp_path / "forks", layout, {})
    writer.start()
    with pytest.raises(ValueError, match="batch 1 written out of order"):
        writer.write_batch(1, {})
    assert json.loads(writer.metadata[LAYOUT_KEY])["schema_version"] == SCHEMA_VERSION
    shutil.rmtree(writer.partial)


@pytest.mark.parametrize("guidance", [1.0, 2.0])  # one pass a step, or cond and uncond together
def test_a_compiled_sampler_compiles_once_per_store(tmp_path, ci_params, monkeypatch, guidance):
    """One input shape and one set of outputs for every call: the last, shorter batch and the
    recorded steps (taps read, cond and uncond passes) included."""
    from torch._dynamo.testing import CompileCounter

    from latent_abstractions.stages import sampling_setup

    counter = CompileCounter()
    monkeypatch.setattr(sampling_setup, "compiled", lambda model: torch.compile(model, dynamic=False, backend=counter))
    torch._dynamo.reset()
    sample = {"compile": True, "eval_block": 0, "batch_size": 7, "guidance": guidance, "full_maps": ["mid"]}
    work = make_workdir(tmp_path, ci_params, sample=sample)
    run_in(work, monkeypatch)
    assert counter.frame_count == 1
    open_store(work / "data" / EXPERIMENT / "trajectories")  # a complete store
