"""What recording trajectories costs: sampling that records into the store against bare
sampling with the same network evaluations, side by side, in one run.

Run from the repository root, no arguments:

    .venv/bin/python benchmarks/trajectory_overhead.py

The network is the smoke bumps model (16x16, base 16 channels, two levels, taps down.1 and
mid), randomly initialised and perturbed (the cost does not depend on the weights);
128 trajectories, reverse SDE, 100 steps, 8 recorded steps (evenly in log-SNR, the last
included), in batches of 64 with 64-row evaluation blocks, one torch thread (two threads on a
shared 2-core machine spin-wait on each other whenever another process takes a core,
which made timings vary fourfold).

- ``recorded``: what sample_trajectories does per batch: per-trajectory noise, the
  TrajectoryRecorder (at recorded steps the cond and uncond passes as one batch with taps,
  and the random control network; state, eps, denoised estimates, pooled activations and
  4x4 maps copied to the host) and the StoreWriter (Arrow tables, one Parquet file per step
  and batch, progress file, final rename).
- ``bare``: the same sampler, the same per-trajectory noise and blocks, and the same
  forward passes at the same steps (cond+uncond batch with taps, control pass), with the
  outputs thrown away: equal network evaluations, nothing recorded or written.
- ``bare, one generator``: bare sampling with a single torch.Generator for the batch,
  printed to show what per-trajectory noise (batch-size independence) costs on its own.

Timed runs of the variants alternate, REPEATS rounds of the three, so a machine that is
busier for a while slows all of them; each round gives (recorded - bare) / bare in wall
time, printed as the median over rounds, beside the CPU-time ratio and the ratio of the
fastest runs. On a shared machine their spread (other processes' load) is larger than the
effect, so the metric is timed inside the recorded runs themselves: the recorder's work at
recorded steps beyond its network calls plus all of the writer's (Arrow tables, Parquet
files, progress, rename), over the rest of the run, which is bare sampling with the same
network evaluations; the last line is the median over rounds, ``overhead=<...>``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from latent_abstractions.core.factors import Factor
from latent_abstractions.diffusion import checkpoints
from latent_abstractions.diffusion.counter_noise import CounterNoise
from latent_abstractions.diffusion.samplers import SAMPLERS, gaussian_noise
from latent_abstractions.diffusion.sde import VPSDE, time_grid
from latent_abstractions.sampling.recording import (
    TrajectoryRecorder,
    recorded_steps,
    stream_seed,
    tap_shapes,
    time_columns,
)
from latent_abstractions.store.store import StoreWriter
from latent_abstractions.store.trajectories import open_store

TRAJECTORIES, BATCH, BLOCK, STEPS, RECORDED, REPEATS = 128, 64, 64, 100, 8, 9
THREADS = 1  # one torch thread: on a shared 2-core machine, two threads spin-wait on each other under load
TAPS = ["down.1", "mid"]
IMAGE = (1, 16, 16)


def network(seed: int):
    values = tuple(float(v) for v in range(2, 14))
    factors = [Factor("x", "continuous", values), Factor("y", "continuous", values)]
    architecture = checkpoints.architecture_from_params(
        {
            "base_channels": 16,
            "channel_mults": [1, 2],
            "groups": 8,
            "cond_frequencies": 8,
            "blocks_per_level": 1,
            "attention_levels": [],
            "heads": 1,
        },
        factors,
        IMAGE,
    )
    torch.manual_seed(seed)
    model = checkpoints.build_model(architecture).eval()
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model, architecture


class Clock:
    """Seconds spent in network evaluations, and in recording and writing around them."""

    def __init__(self):
        self.network = self.recording = self.writing = 0.0


class TimedNetwork:
    def __init__(self, network, clock: Clock):
        self.network, self.clock = network, clock

    def __call__(self, *args):
        start = time.perf_counter()
        result = self.network(*args)
        self.clock.network += time.perf_counter() - start
        return result


class Timed(TrajectoryRecorder):
    """The recorder, timing what it does at recorded steps beyond its network evaluations."""

    def __init__(self, clock: Clock, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.network, self.control = TimedNetwork(self.network, clock), TimedNetwork(self.control, clock)

    def __call__(self, x, t, step):
        if step not in self.record_steps:
            return super().__call__(x, t, step)
        start, network = time.perf_counter(), self.clock.network
        result = super().__call__(x, t, step)
        self.clock.recording += (time.perf_counter() - start) - (self.clock.network - network)
        return result


class Bare(TrajectoryRecorder):
    """The recorder's forward passes at the recorded steps, their outputs thrown away."""

    def __call__(self, x, t, step):
        if step not in self.record_steps:
            return self.eps(x, t)
        eps_cond, eps_uncond, _, _ = self._both(x, t, self.taps)
        self.control(x, t, self.values, self.null, self.taps)
        return self.drive(eps_cond, eps_uncond)


def main() -> None:
    torch.set_num_threads(THREADS)
    model, architecture = network(0)
    control, _ = network(1)
    sde = VPSDE()
    times = time_grid(sde.T, 1e-3, STEPS, sde=sde)
    steps = sorted(set(recorded_steps({"kind": "log_snr", "count": RECORDED}, times, sde, "record")) | {STEPS})
    t_values, log_snrs = time_columns(sde, times, steps)
    rng = np.random.default_rng(0)
    requested = {
        "x": rng.integers(2, 14, TRAJECTORIES).astype(np.float64),
        "y": rng.integers(2, 14, TRAJECTORIES).astype(np.float64),
    }
    values = torch.tensor(np.stack([requested["x"], requested["y"]], axis=1), dtype=torch.float32)
    sampler = SAMPLERS["sde"]
    batches = [np.arange(s, min(TRAJECTORIES, s + BATCH)) for s in range(0, TRAJECTORIES, BATCH)]
    layout = {
        "kind": "trajectories",
        "image_shape": list(IMAGE),
        "factors": architecture["factors"],
        "factor_names": ["x", "y"],
        "condition": ["x", "y"],
        "guidance": 1.0,
        "steps": STEPS,
        "recorded_steps": steps,
        "recorded_t": t_values,
        "recorded_log_snr": log_snrs,
        "taps": TAPS,
        "full_maps": [],
        "passes": ["cond", "uncond", "random"],
        "tap_shapes": tap_shapes(model, IMAGE, 2, TAPS),
        "rows": {str(s): TRAJECTORIES for s in steps},
        "parts": {str(s): len(batches) for s in steps},
        "checkpoint_sha256": "benchmark",
    }
    scratch = Path(tempfile.mkdtemp(prefix="trajectory_overhead."))

    clocks = []

    def recorded() -> None:
        clock = Clock()
        clocks.append(clock)
        target = scratch / "trajectories"
        start = time.perf_counter()
        writer = StoreWriter(target, layout, {"step": "benchmark"})
        writer.start()
        clock.writing += time.perf_counter() - start
        for batch, ids in enumerate(batches):
            noise = CounterNoise([stream_seed(1, 0, j) for j in ids])
            prior = sde.prior_std() * noise((len(ids), *IMAGE))
            recorder = Timed(clock, model, sde, values[ids], steps, TAPS, control, block=BLOCK)
            sampler(recorder, sde, prior, times, noise=noise)
            start = time.perf_counter()
            parts = {}
            for step, t_value, log_snr in zip(steps, t_values, log_snrs):
                n = len(ids)
                parts[step] = (
                    batch,
                    {
                        "trajectory": ids.astype(np.int32),
                        "step": np.full(n, step, np.int32),
                        "t": np.full(n, t_value, np.float32),
                        "log_snr": np.full(n, log_snr, np.float32),
                        "requested_x": requested["x"][ids],
                        "requested_y": requested["y"][ids],
                        **recorder.records[step],
                    },
                )
            writer.write_batch(batch, parts)
            del recorder, parts
            clock.writing += time.perf_counter() - start
        start = time.perf_counter()
        writer.finish()
        clock.writing += time.perf_counter() - start

    def bare(per_trajectory: bool = True) -> None:
        for ids in batches:
            if per_trajectory:
                noise = CounterNoise([stream_seed(1, 0, j) for j in ids])
                prior = sde.prior_std() * noise((len(ids), *IMAGE))
            else:
                generator = torch.Generator().manual_seed(int(ids[0]))
                noise, prior = gaussian_noise(generator), sde.prior_sample((len(ids), *IMAGE), generator)
            eps_fn = Bare(model, sde, values[ids], steps, TAPS, control, block=BLOCK)
            sampler(eps_fn, sde, prior, times, noise=noise)

    variants = {"recorded": recorded, "bare": bare, "bare, one generator": lambda: bare(False)}
    wall, cpu = {name: [] for name in variants}, {name: [] for name in variants}
    recorded()  # warm-up (and a store to check)
    store = open_store(scratch / "trajectories")
    rows = store.layout["rows"][str(steps[0])] * len(steps)
    size = sum(p.stat().st_size for p in store.files())
    for _ in range(REPEATS):
        for name, run in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    shutil.rmtree(scratch)
    evaluations = TRAJECTORIES * (STEPS + 1) + TRAJECTORIES * len(steps) * 2
    print(
        f"{TRAJECTORIES} trajectories x {STEPS + 1} network evaluations, {len(steps)} recorded steps "
        f"(+ uncond and control passes there): {evaluations} row evaluations per run; "
        f"store {rows} rows, {size / 2**20:.1f} MiB; torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.2f} (other processes share this machine)"
    )
    for name in variants:
        print(
            f"{name:>22}: wall median {statistics.median(wall[name]):.2f} s, min {min(wall[name]):.2f} s; "
            f"CPU median {statistics.median(cpu[name]):.2f} s  (wall runs: {', '.join(f'{v:.2f}' for v in wall[name])})"
        )

    def paired(times: dict, name: str, baseline: str) -> float:
        """Median over repeats of each repeat's (name - baseline) / baseline: runs side by side
        see the same load."""
        return statistics.median((a - b) / b for a, b in zip(times[name], times[baseline]))

    print(
        f"per-trajectory noise alone: wall {paired(wall, 'bare', 'bare, one generator'):+.3f}, "
        f"CPU {paired(cpu, 'bare', 'bare, one generator'):+.3f} over one generator per batch"
    )
    print(
        f"recording and writing: CPU time {paired(cpu, 'recorded', 'bare'):+.3f}, "
        f"wall min {(min(wall['recorded']) - min(wall['bare'])) / min(wall['bare']):+.3f} over bare sampling"
    )
    direct = statistics.median(
        (c.recording + c.writing) / (w - c.recording - c.writing) for c, w in zip(clocks[1:], wall["recorded"])
    )
    last = clocks[-1]
    print(
        f"inside the recorded runs: recording {last.recording:.2f} s + writing {last.writing:.2f} s of "
        f"{wall['recorded'][-1]:.2f} s (network {last.network:.2f} s); as a fraction of the rest: median {direct:.3f}"
    )
    print(
        f"side by side, median over rounds of (recorded - bare) / bare in wall time: "
        f"{paired(wall, 'recorded', 'bare'):+.3f} (its spread is the other processes' load)"
    )
    print(f"overhead={direct:.3f}")


if __name__ == "__main__":
    sys.exit(main())
