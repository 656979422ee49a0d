"""Density-target speed: our count-exact per-point kernels against the CSRNet reference's way
(one full-image scipy gaussian_filter per point), same points, same machine, one run.

    .venv/bin/python benchmarks/density.py

Uses SHA's densest training image when COUNTING_DATA_ROOT is set, else 3138 random points.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The project root first: benchmarks/models.py and benchmarks/selection.py (named by the issues)
# must not shadow the packages of the same name when this script is run as a file.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os
import statistics
import time

import numpy as np
from scipy.ndimage import gaussian_filter

from orchestrator.data import DensityConfig, density_map, open_dataset


def median_seconds(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def reference_filter_density(points, shape, sigma):
    """CSRNet-reference style: a delta image per point, blurred over the whole image."""
    density = np.zeros(shape)
    for x, y in points:
        delta = np.zeros(shape)
        delta[min(int(y), shape[0] - 1), min(int(x), shape[1] - 1)] = 1.0
        density += gaussian_filter(delta, sigma, mode="constant")
    return density


def densest_sha():
    root = os.environ.get("COUNTING_DATA_ROOT")
    part_a = Path(root or "/nonexistent") / "ShanghaiTech/part_A"
    if part_a.is_dir():
        item = max(open_dataset("shanghaitech_a", part_a, "train"), key=lambda it: it.count)
        return item.points, item.size, f"SHA {item.id}"
    rng = np.random.default_rng(0)
    return np.c_[rng.uniform(0, 1024, 3138), rng.uniform(0, 768, 3138)], (768, 1024), "random"


def main():
    rng = np.random.default_rng(0)
    shape = (768, 1024)
    pts500 = np.c_[rng.uniform(0, 1024, 500), rng.uniform(0, 768, 500)]
    fixed, adaptive = DensityConfig(sigma=15.0), DensityConfig(mode="adaptive")
    print(f"BENCH density_ms_1024x768_500pts_fixed15 {1e3 * median_seconds(lambda: density_map(pts500, shape, fixed)):.1f} ms")
    print(f"BENCH density_ms_1024x768_500pts_adaptive {1e3 * median_seconds(lambda: density_map(pts500, shape, adaptive)):.1f} ms")
    pts, size, what = densest_sha()
    print(f"# densest: {what}, {len(pts)} points, {size[1]}x{size[0]}")
    print(f"BENCH density_ms_sha_densest_adaptive {1e3 * median_seconds(lambda: density_map(pts, size, adaptive)):.1f} ms")
    few = pts500[:20]
    ours = median_seconds(lambda: density_map(few, shape, fixed), repeats=3)
    ref = median_seconds(lambda: reference_filter_density(few, shape, 15.0), repeats=1)
    print(f"BENCH density_speedup_vs_reference_filter {ref / ours:.0f} x")


if __name__ == "__main__":
    main()
