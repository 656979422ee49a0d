"""Speed and memory of the selection library (issue 4).

Run: ``.venv/bin/python benchmarks/selection.py``. Prints, from one run:

* ``gdsim_speedup_vs_naive_400x40``: literal Python-loop GDSIM (``selection.gdsim_naive``)
  time / vectorised ``selection.gdsim`` time, 400 pool x 40 labeled signatures (85 values),
  one partition; the results are checked bit-identical first.
* ``pssw_seconds_10k_x_1k`` / ``pssw_seconds_1m_x_1k``: one full PSSW selection (Jenks
  partitions + GDSIM + weighted draws, m = 10) from precomputed counts and signatures.
* ``pssw_peak_gb_1m_x_1k``: peak resident memory of this process while the 1M selection runs,
  sampled every 5 ms; it includes the inputs (the 1M x 85 float64 signatures alone are 0.68 GB).

Synthetic data: counts ~ lognormal(4, 1.2) (a crowd-like long tail, median ~55 people), each
image's mass spread over the 8 x 8 finest cells with Gamma(2) weights, coarser levels summed
from them; labeled and pool images come from the same distribution.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

# This file is itself named selection.py and Python puts its folder first on sys.path: put the
# repository root before it so that `import selection` finds the package, not this script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import selection  # noqa: E402


def synthetic_signatures(n_images: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(n,)`` counts and ``(n, 85)`` signatures consistent with them (levels 0..3)."""
    counts = rng.lognormal(4.0, 1.2, n_images)
    signatures = np.empty((n_images, 85))
    chunk = 100_000
    for start in range(0, n_images, chunk):
        stop = min(start + chunk, n_images)
        weights = rng.gamma(2.0, size=(stop - start, 64))
        weights *= (counts[start:stop] / weights.sum(axis=1))[:, None]
        cells = weights.reshape(-1, 8, 8)
        levels = [cells]
        for _ in range(3):
            finer = levels[-1]
            side = finer.shape[1] // 2
            levels.append(finer.reshape(-1, side, 2, side, 2).sum(axis=(2, 4)))
        levels.reverse()
        signatures[start:stop] = np.concatenate([lv.reshape(stop - start, -1) for lv in levels], 1)
    return counts, signatures


class PeakRss:
    """Samples this process's resident memory in a thread; ``peak_bytes`` after ``stop``."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._running = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self._page

    def _run(self) -> None:
        while self._running:
            self.peak_bytes = max(self.peak_bytes, self._rss())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakRss:
        self.peak_bytes = self._rss()
        self._running = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running = False
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())


def timed_pssw(n_pool: int, n_labeled: int, m: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    pool_counts, pool_signatures = synthetic_signatures(n_pool, rng)
    labeled_counts, labeled_signatures = synthetic_signatures(n_labeled, rng)
    with PeakRss() as memory:
        start = time.perf_counter()
        result = selection.pssw(
            pool_counts, pool_signatures, labeled_counts, labeled_signatures, m,
            np.random.default_rng(seed),
        )
        seconds = time.perf_counter() - start
    assert result.selected.size == m and np.unique(result.selected).size == m
    print(
        f"# pssw {n_pool} x {n_labeled}: {seconds:.2f} s, partitions by {result.partition_method}, "
        f"pool per partition {np.bincount(result.pool_partition).tolist()}",
        flush=True,
    )
    return seconds, memory.peak_bytes / 1e9


def gdsim_speedup(n_pool: int = 400, n_labeled: int = 40, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    _, pool_signatures = synthetic_signatures(n_pool, rng)
    _, labeled_signatures = synthetic_signatures(n_labeled, rng)
    start = time.perf_counter()
    naive = selection.gdsim_naive(pool_signatures, labeled_signatures)
    naive_seconds = time.perf_counter() - start
    repeats = 20
    start = time.perf_counter()
    for _ in range(repeats):
        fast = selection.gdsim(pool_signatures, labeled_signatures).score
    fast_seconds = (time.perf_counter() - start) / repeats
    assert np.array_equal(naive, fast), "vectorised GDSIM differs from the literal loop"
    print(f"# gdsim {n_pool}x{n_labeled}: naive {naive_seconds:.3f} s, vectorised "
          f"{fast_seconds * 1e3:.3f} ms", flush=True)
    return naive_seconds / fast_seconds


def pruning_effect(n_pool: int = 10_000, n_labeled: int = 1_000, seed: int = 3) -> None:
    """Context line: GDSIM in one partition with and without the exact row-sum pruning."""
    rng = np.random.default_rng(seed)
    _, pool_signatures = synthetic_signatures(n_pool, rng)
    _, labeled_signatures = synthetic_signatures(n_labeled, rng)
    seconds, scores = {}, {}
    for prune in (False, True):
        start = time.perf_counter()
        scores[prune] = selection.gdsim(pool_signatures, labeled_signatures, prune=prune).score
        seconds[prune] = time.perf_counter() - start
    assert np.array_equal(scores[True], scores[False])
    print(f"# gdsim {n_pool}x{n_labeled} one partition: cdist on every pair {seconds[False]:.2f} s, "
          f"with pruning {seconds[True]:.2f} s (identical scores)", flush=True)


def main() -> None:
    speedup = gdsim_speedup()
    pruning_effect()
    seconds_10k, _ = timed_pssw(10_000, 1_000, 10, seed=1)
    seconds_1m, peak_gb = timed_pssw(1_000_000, 1_000, 10, seed=2)
    print(f"BENCH gdsim_speedup_vs_naive_400x40 {speedup:.0f} x")
    print(f"BENCH pssw_seconds_10k_x_1k {seconds_10k:.3f} s")
    print(f"BENCH pssw_seconds_1m_x_1k {seconds_1m:.2f} s")
    print(f"BENCH pssw_peak_gb_1m_x_1k {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
