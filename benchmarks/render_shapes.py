"""Render all 480,000 Shapes3D-like images at 64x64 into a memory-mapped .npy file.

Run from the repository root, no arguments:

    .venv/bin/python benchmarks/render_shapes.py

The images are rendered in chunks of CHUNK and written into a uint8 (N, 64, 64, 3)
``.npy`` file created with ``np.lib.format.open_memmap`` in a temporary directory,
which is deleted at the end. Each chunk is written through a fresh mapping of the
file that is closed right after, so the written pages leave the process's resident
set (the kernel writes them back from its page cache) and memory stays bounded by
one chunk whatever N is.

Side by side (before the full run, while the kernel is not yet busy writing the
file back), the naive way is timed on a random sample: one ``render`` call per
image, extrapolated to the full 480,000. The last line is ``render_shapes_s=<seconds>``, the
time to render the whole set from a cold start (geometry precompute included).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from latent_abstractions.datasets import shapes

SIZE = 64
CHUNK = 2_000
BASELINE_SAMPLE = 2_000
SPOT_CHECKS = 64
REPEATS = 3


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def main() -> None:
    wall_start = time.perf_counter()
    indices = shapes.all_indices()
    total = len(indices)
    print(f"shapes benchmark: {total:,} images at {SIZE}x{SIZE}, chunks of {CHUNK:,}, {os.cpu_count()} CPU cores")
    print(f"peak RSS before rendering: {peak_rss_mb():.0f} MB")

    with tempfile.TemporaryDirectory(prefix="render_shapes_") as folder:
        path = Path(folder) / "shapes3d_like_64.npy"
        created = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(total, SIZE, SIZE, 3))
        del created  # header written and file sized; chunks go through fresh mappings below

        start = time.perf_counter()
        shapes.render(indices[:1], SIZE)  # builds and caches the per-size geometry
        precompute_s = time.perf_counter() - start
        print(f"geometry precompute (first call, cached per size): {precompute_s:.2f} s")

        sample = indices[np.sort(np.random.default_rng(0).choice(total, BASELINE_SAMPLE, replace=False))]
        naive = np.empty((len(sample), SIZE, SIZE, 3), dtype=np.uint8)
        naive_s = batched_s = float("inf")
        for _ in range(REPEATS):  # best of REPEATS: the sample is short and the cores are shared
            start = time.perf_counter()
            for i in range(len(sample)):
                naive[i : i + 1] = shapes.render(sample[i : i + 1], SIZE)
            naive_s = min(naive_s, time.perf_counter() - start)
            start = time.perf_counter()
            batched = shapes.render(sample, SIZE)
            batched_s = min(batched_s, time.perf_counter() - start)
        assert np.array_equal(batched, naive), "batched and one-at-a-time renders differ"
        naive_rate = len(sample) / naive_s
        print(
            f"naive baseline, one render() call per image, random sample of {len(sample):,} "
            f"(best of {REPEATS}): {naive_s:.3f} s = {naive_rate:,.0f} images/s -> {total:,} extrapolated: "
            f"{total / naive_rate:.1f} s (+ {precompute_s:.2f} s precompute = "
            f"{total / naive_rate + precompute_s:.1f} s)"
        )
        print(
            f"same {len(sample):,} images in one render() call (best of {REPEATS}): "
            f"{len(sample) / batched_s:,.0f} images/s ({naive_s / batched_s:.1f}x the naive rate; identical bytes)"
        )

        start = time.perf_counter()
        rendering_s = 0.0
        for first in range(0, total, CHUNK):
            tick = time.perf_counter()
            images = shapes.render(indices[first : first + CHUNK], SIZE)
            rendering_s += time.perf_counter() - tick
            target = np.lib.format.open_memmap(path, mode="r+")
            target[first : first + len(images)] = images
            del target  # unmap: the written pages leave the resident set (the kernel writes them back)
        chunked_s = time.perf_counter() - start
        render_shapes_s = precompute_s + chunked_s
        print(
            f"chunked render into the memmap: {total:,} images in {chunked_s:.1f} s = "
            f"{total / chunked_s:,.0f} images/s, writing included "
            f"(rendering {rendering_s:.1f} s = {total / rendering_s:,.0f} images/s, "
            f"writing the memmap {chunked_s - rendering_s:.1f} s)"
        )
        print(
            f"speed-up over naive, extrapolated to {total:,}: rendering {(total / naive_rate) / rendering_s:.2f}x, "
            f"whole chunked run, writing included, vs naive rendering alone {(total / naive_rate) / chunked_s:.2f}x"
        )

        stored = np.lib.format.open_memmap(path, mode="r")
        check = np.random.default_rng(0).choice(total, SPOT_CHECKS, replace=False)
        assert stored.shape == (total, SIZE, SIZE, 3) and stored.dtype == np.uint8
        assert np.array_equal(stored[np.sort(check)], shapes.render(indices[np.sort(check)], SIZE))
        del stored
        print(f"spot check: {SPOT_CHECKS} random images in the file equal fresh renders")
        print(f"file: {path.name}, {path.stat().st_size / 1e6:,.1f} MB (deleted with its temporary directory)")

    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    print(f"total wall: {time.perf_counter() - wall_start:.1f} s")
    print(f"render_shapes_s={render_shapes_s:.1f}")


if __name__ == "__main__":
    main()
