"""Throughput of the exact information I(Y_k; X_t) of a 64x64 image set: the one-pass
stream (exact_stream.exact_information, what the exact_order stage runs) beside the
per-time path (information.mutual_information without a model, what it ran before).

Run from the repository root, no arguments (about a minute on a 2-core CPU):

    .venv/bin/python benchmarks/exact_information.py

The data set is the native-spacing subset of the procedural shapes at 64x64 (4 consecutive
values of every factor, 4,096 images, uint8), rendered in memory. Throughput counts
images x draws per second: every draw's posterior over every image. The per-time path
reads the images once per time and takes one float64 dot product per (draw, image); the
stream reads them once in all and takes two per (pair, image), shared by every time, so
its throughput grows with the number of times. Both are timed at the per-time path's
settings and the stream also at the full-grid overlay's (64 times x 256 pairs).

Two checks come with the timings: the stream's posteriors against the per-time path's
float64 posteriors on the same draws (largest absolute difference), and the two curves
against each other (largest gap in units of their combined standard error).

The last line is ``throughput=<images x draws per second>`` of the stream at the overlay's settings.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from latent_abstractions.analysis import information
from latent_abstractions.analysis.exact_stream import exact_information, posteriors
from latent_abstractions.analysis.ground_truth import FiniteMixture
from latent_abstractions.datasets import shapes
from latent_abstractions.diffusion.sde import VPSDE, log_snr_grid

NATIVE = {name: [0, 1, 2, 3] for name in shapes.FACTOR_NAMES}
T_END = 1e-3
BASELINE = {"points": 8, "samples": 128}
OVERLAY = {"points": 64, "samples": 256}
CPU = torch.device("cpu")


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def posterior_gap(mixture: FiniteMixture, sde: VPSDE) -> float:
    """Largest |p_stream - p_float64| over 16 pairs at 12 times."""
    generator = torch.Generator().manual_seed(1)
    positions = mixture.stratified_positions(1, 16, generator)[0]
    x0 = mixture.gather(positions)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    times = log_snr_grid(sde, sde.T, T_END, 12)
    streamed, _ = posteriors(mixture, positions, noise, (sde.alpha(times) / sde.sigma(times)) ** 2, CPU)
    worst = 0.0
    for p, t in enumerate(times.tolist()):
        ts = torch.full((len(x0),), t, dtype=torch.float64)
        alpha, sigma = sde.alpha(ts), sde.sigma(ts)
        x = alpha[:, None, None, None] * x0 + sigma[:, None, None, None] * noise
        reference = torch.cat(mixture.factor_posteriors(x, alpha, sigma), dim=1)
        worst = max(worst, float((reference - streamed[p]).abs().max()))
    return worst


def main() -> None:
    torch.manual_seed(0)
    sde = VPSDE()
    data, render_s = timed(shapes.make, 64, NATIVE)
    mixture = FiniteMixture(data.images, data.bins(), data.condition_values())
    n = len(mixture)
    print(f"{n:,} images of {data.images.shape[1:]} uint8, rendered in {render_s:.1f} s; {os.cpu_count()} CPU cores")

    rates = {}
    base, base_s = timed(information.mutual_information, None, sde, mixture, T_END, seed=3, **BASELINE)
    rates["per-time path (float64), baseline settings"] = n * BASELINE["points"] * BASELINE["samples"] / base_s
    ours, ours_s = timed(exact_information, sde, mixture, T_END, seed=3, device=CPU, **BASELINE)
    rates["one-pass stream, baseline settings"] = n * BASELINE["points"] * BASELINE["samples"] / ours_s
    _, full_s = timed(exact_information, sde, mixture, T_END, seed=3, device=CPU, **OVERLAY)
    rates["one-pass stream, overlay settings"] = n * OVERLAY["points"] * OVERLAY["samples"] / full_s
    for name, rate in rates.items():
        print(f"{name:48s} {rate:14,.0f} images x draws / s")

    gap = np.abs(base.mean["exact"] - ours.estimate.mean["exact"])
    scale = np.hypot(base.stderr["exact"], ours.estimate.stderr["exact"])
    print(
        f"curves, stream against per-time path: largest gap {gap.max():.4f} nats = {(gap / scale).max():.2f} standard errors"
    )
    print(f"posteriors, stream against float64 on the same draws: largest difference {posterior_gap(mixture, sde):.2e}")
    speedup = rates["one-pass stream, overlay settings"] / rates["per-time path (float64), baseline settings"]
    print(f"speed-up at the overlay's settings: {speedup:.1f}x")
    print(f"throughput={rates['one-pass stream, overlay settings']:.0f}")


if __name__ == "__main__":
    main()
