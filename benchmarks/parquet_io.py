"""Input and output of the trajectory store against plain pyarrow, side by side, in one run.

Run from the repository root, no arguments:

    .venv/bin/python benchmarks/parquet_io.py

1. Write throughput. The same records (the smoke bumps layout: 16x16 states, eps and
   denoised estimates of the cond and uncond passes, pooled activations and 4x4 maps of two
   32-channel taps for three passes, about 18 KB a row), 1024 trajectories at 20 recorded
   steps, are written (a) as our store by StoreWriter, batch by batch (4 batches of 256: 80
   Parquet files, a progress file after each batch, the final rename), Arrow tables built
   from the numpy records included, and (b) as one table built from the same arrays by one
   plain ``pyarrow.parquet.write_table`` with its defaults. Also shown: the same plain write
   with the store's encoding options (no compression, no dictionary, statistics on scalar
   columns only, page checksums), which isolates the cost of the store's many files.
2. Slice read. One step of one tap (``Store.feature``, the store opened and its footers
   checked first) against reading the whole store (``pq.read_table`` of the directory, and
   our reader's ``Store.table()``), all from the page cache.
3. Memory. The real sample_trajectories stage (random weights, 16x16 bumps model, 10 steps,
   5 recorded, batches of 256) in fresh processes for 512 and 5120 trajectories: the
   process's peak RSS while the stage runs (VmHWM, reset just before it through
   /proc/self/clear_refs: ru_maxrss would report the parent's peak, inherited across exec);
   streaming keeps it flat.

Runs alternate (median of REPEATS each). The last line is ``write_ratio=<our store's write
throughput / the plain write_table's>``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latent_abstractions.store.store import StoreWriter
from latent_abstractions.store.store_layout import schema_for
from latent_abstractions.store.trajectories import open_store

TRAJECTORIES, BATCH, STEPS, REPEATS = 1024, 256, 20, 3
ROOT = Path(__file__).resolve().parents[1]
LAYOUT = {
    "kind": "trajectories",
    "image_shape": [1, 16, 16],
    "factors": [],
    "factor_names": ["x", "y"],
    "recorded_steps": list(range(0, 100, 5)),
    "recorded_t": [1.0 - s / 100 for s in range(0, 100, 5)],
    "recorded_log_snr": [0.0] * STEPS,
    "taps": ["down.1", "mid"],
    "full_maps": [],
    "passes": ["cond", "uncond", "random"],
    "tap_shapes": {"down.1": [32, 8, 8], "mid": [32, 8, 8]},
    "rows": {str(s): TRAJECTORIES for s in range(0, 100, 5)},
    "parts": {str(s): TRAJECTORIES // BATCH for s in range(0, 100, 5)},
    "checkpoint_sha256": "benchmark",
}


def records(rng: np.random.Generator) -> dict[int, dict[str, np.ndarray]]:
    """Per recorded step, every column for all trajectories (the store's schema)."""
    schema = schema_for(LAYOUT)
    out = {}
    for index, step in enumerate(LAYOUT["recorded_steps"]):
        columns = {
            "trajectory": np.arange(TRAJECTORIES, dtype=np.int32),
            "step": np.full(TRAJECTORIES, step, np.int32),
            "t": np.full(TRAJECTORIES, LAYOUT["recorded_t"][index], np.float32),
            "log_snr": np.zeros(TRAJECTORIES, np.float32),
            "requested_x": rng.integers(2, 14, TRAJECTORIES).astype(np.float64),
            "requested_y": rng.integers(2, 14, TRAJECTORIES).astype(np.float64),
        }
        for field in schema:
            if pa.types.is_fixed_size_list(field.type):
                columns[field.name] = rng.standard_normal((TRAJECTORIES, field.type.list_size), dtype=np.float32)
        out[step] = columns
    return out


def write_store(data: dict, target: Path) -> None:
    writer = StoreWriter(target, LAYOUT, {"step": "benchmark"})
    writer.start()
    for batch in range(TRAJECTORIES // BATCH):
        rows = slice(batch * BATCH, (batch + 1) * BATCH)
        writer.write_batch(
            batch, {step: (batch, {k: v[rows] for k, v in columns.items()}) for step, columns in data.items()}
        )
    writer.finish()


def one_table(data: dict) -> pa.Table:
    schema = schema_for(LAYOUT)
    arrays = []
    for field in schema:
        values = np.concatenate([columns[field.name] for columns in data.values()])
        if pa.types.is_fixed_size_list(field.type):
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), field.type.list_size))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def plain_write(data: dict, target: Path, **options) -> None:
    pq.write_table(one_table(data), target, **options)


MEMORY_SCRIPT = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, torch, yaml
from latent_abstractions.diffusion import checkpoints
from latent_abstractions.pipeline import params as params_module
from latent_abstractions.datasets import bumps
from latent_abstractions.stages.sample_trajectories import sample_step
torch.set_num_threads(1)
count = int(sys.argv[1])
params = yaml.safe_load(open("params.yaml"))
experiment = params["experiments"]["bumps"]
experiment["sample"].update(steps=10, record={"kind": "log_snr", "count": 5}, batch_size=256, eval_block=64,
                            per_position=count // 128, max_conditions=128, position_stride=1)
params = {"experiments": {"bench": experiment}}
Path("params.yaml").write_text(yaml.safe_dump(params))
spec = experiment["dataset"]
data = bumps.make(**{k: spec[k] for k in ("height", "width", "sigma", "spacing_x", "spacing_y", "margin")})
architecture = checkpoints.architecture_from_params(experiment["model"], data.factor_table, (1, 16, 16))
torch.manual_seed(0)
checkpoints.save(checkpoints.build_model(architecture), architecture, "data/bench/model/weights.safetensors", {})
validated = params_module.experiment(params_module.load("params.yaml"), "bench")
def status(key):
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0])
before = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
start = time.perf_counter()
sample_step("bench", validated)
print(json.dumps({"peak_rss_kib": status("VmHWM"), "rss_before_kib": before,
                  "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seconds": time.perf_counter() - start}))
"""


def peak_rss(count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="parquet_io_rss.") as work:
        (Path(work) / "workflow" / "schemas").mkdir(parents=True)
        shutil.copy(ROOT / "workflow" / "schemas" / "params.schema.yaml", Path(work) / "workflow" / "schemas")
        shutil.copy(ROOT / "params.yaml", Path(work) / "params.yaml")
        result = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(count)], cwd=work, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            sys.exit(f"parquet_io: the sampling run failed:\n{result.stderr[-2000:]}")
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        store = open_store(Path(work) / "data" / "bench" / "trajectories")
        measured["rows"] = sum(store.layout["rows"].values())
        measured["bytes"] = sum(p.stat().st_size for p in store.files())
        return measured


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="parquet_io."))
    try:
        data = records(np.random.default_rng(0))
        nbytes = sum(v.nbytes for columns in data.values() for v in columns.values())
        ours_options = {
            "compression": "none",
            "use_dictionary": False,
            "write_page_checksum": True,
            "write_statistics": ["trajectory", "step", "t", "log_snr", "requested_x", "requested_y"],
        }
        variants = {
            "our store": lambda: write_store(data, scratch / "store"),
            "plain write_table": lambda: plain_write(data, scratch / "plain.parquet"),
            "plain, store's options": lambda: plain_write(data, scratch / "plain_options.parquet", **ours_options),
        }
        timings = {name: [] for name in variants}
        for _ in range(REPEATS):
            for name, run in variants.items():
                if name == "our store":
                    shutil.rmtree(scratch / "store", ignore_errors=True)
                start = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - start)
        print(
            f"write: {len(data) * TRAJECTORIES} rows, {nbytes / 2**20:.0f} MiB of records; "
            f"load average {os.getloadavg()[0]:.2f} (other processes share this 2-core machine)"
        )
        for name, values in timings.items():
            median = statistics.median(values)
            print(
                f"{name:>24}: median {median:.2f} s = {nbytes / median / 2**20:.0f} MiB/s  "
                f"(runs: {', '.join(f'{v:.2f}' for v in values)})"
            )
        store_files = list((scratch / "store").rglob("*.parquet"))
        print(
            f"  our store: {len(store_files)} files, {sum(p.stat().st_size for p in store_files) / 2**20:.0f} MiB; "
            f"plain file {(scratch / 'plain.parquet').stat().st_size / 2**20:.0f} MiB"
        )
        write_ratio = statistics.median(timings["plain write_table"]) / statistics.median(timings["our store"])

        step, tap = LAYOUT["recorded_steps"][7], "act.cond.mid"
        reads = {
            "one step, one tap (open + feature)": lambda: open_store(scratch / "store").feature(tap, step),
            "whole store, pq.read_table": lambda: pq.read_table(scratch / "store"),
            "whole store, Store.table()": lambda: open_store(scratch / "store").table(),
        }
        read_times = {name: [] for name in reads}
        for _ in range(5):
            for name, run in reads.items():
                start = time.perf_counter()
                result = run()
                read_times[name].append(time.perf_counter() - start)
                del result
        for name, values in read_times.items():
            print(f"read {name:>36}: median {statistics.median(values) * 1e3:.1f} ms")
        slice_ratio = statistics.median(read_times["one step, one tap (open + feature)"]) / statistics.median(
            read_times["whole store, pq.read_table"]
        )
        print(f"slice_read_ratio={slice_ratio:.4f}  (one step of one tap / the whole 20-step store; target < 0.15)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    small, large = peak_rss(512), peak_rss(5120)
    for count, measured in ((512, small), (5120, large)):
        print(
            f"sampling {count} trajectories: peak RSS {measured['peak_rss_kib'] / 1024:.0f} MiB "
            f"(before sampling {measured['rss_before_kib'] / 1024:.0f} MiB), "
            f"{measured['seconds']:.1f} s, store {measured['rows']} rows, {measured['bytes'] / 2**20:.1f} MiB"
        )
    growth = (large["peak_rss_kib"] - small["peak_rss_kib"]) / small["peak_rss_kib"]
    print(f"rss_growth_10x={growth:.4f}  (peak RSS, 5120 vs 512 trajectories; target < 0.10)")
    print(f"write_ratio={write_ratio:.3f}")


if __name__ == "__main__":
    main()
