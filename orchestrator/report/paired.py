"""Paired comparisons: is one setting really better than another on the same seeds?

For every two settings of an experiment (same method and dataset) whose swept settings differ in
exactly one key, the trials are paired by ``seed`` and the MAE differences ``A − B`` (A the
setting first in the config's grid order) are summarised: mean, 95 % confidence interval, a
paired test's two-sided p-value and n pairs. Each setting is also paired with its own Mean
baseline (``mean_baseline_mae`` of the same trials, AL-AC). CSS-CCNN's baselines
(``cssccnn.baseline: mean / pprior / ...``) are settings of one swept key, so they pair as any
other. Final rows (each trial's last cycle/stage) and, for AL-AC, every cycle (by ``n_labeled``).

The test (scipy's implementations): **paired t-test** (``scipy.stats.ttest_1samp`` on the
differences, which is ``ttest_rel``) when n < :data:`WILCOXON_MIN_N`, **Wilcoxon signed-rank**
(``scipy.stats.wilcoxon``, two-sided) from n = 10 up. Below 10 pairs the exact Wilcoxon test is
too coarse to use: its smallest two-sided p is 2 / 2^n (0.0625 at n = 5, so it can never reject
at 5 %). The interval is always the t interval of the mean difference
(``ttest_1samp(...).confidence_interval(0.95)``). All differences zero (e.g. AL-AC's first cycle,
the same m0 images for every strategy) -> "identical", p = 1; n < 2, or every difference the
same non-zero number -> no test (p "-").

Pooled settings (UCF_CC_50's folds) are paired within each seed: a seed's difference is the mean
over the folds both settings completed of the per-fold differences.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from orchestrator.report.tables import (
    SETTING_PREFIX,
    GroupKey,
    ResultsSet,
    _groups,
    final_rows,
    group_sort_key,
    pooled_columns,
    setting_keys,
)

WILCOXON_MIN_N = 10
CONFIDENCE = 0.95
MEAN_BASELINE = "Mean baseline"
TEST_RULE = (f"paired t-test when n < {WILCOXON_MIN_N} pairs, Wilcoxon signed-rank from n = {WILCOXON_MIN_N}; "
             f"{CONFIDENCE:.0%} CI = t interval of the mean difference; two-sided p (scipy)")


@dataclasses.dataclass(frozen=True)
class PairedTest:
    """Summary of paired differences: mean, CI bounds, p-value, which test, n pairs."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    p: float
    test: str


def paired_test(differences) -> PairedTest:
    """Mean, 95 % CI and two-sided p of paired differences (NaN dropped); the rule in the module doc."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    n = int(d.size)
    if n == 0:
        return PairedTest(0, math.nan, math.nan, math.nan, math.nan, "none (no pairs)")
    mean = float(d.mean())
    if np.all(d == 0):
        return PairedTest(n, 0.0, 0.0, 0.0, 1.0, "identical")
    if n < 2:
        return PairedTest(n, mean, math.nan, math.nan, math.nan, "none (n < 2)")
    if np.all(d == d[0]):  # no spread: t is infinite, the interval a point; no test is meaningful
        return PairedTest(n, mean, mean, mean, math.nan, "none (all differences equal)")
    t = stats.ttest_1samp(d, 0.0)
    ci = t.confidence_interval(CONFIDENCE)
    if n >= WILCOXON_MIN_N:
        p, test = float(stats.wilcoxon(d).pvalue), "Wilcoxon"
    else:
        p, test = float(t.pvalue), "paired t"
    return PairedTest(n, mean, float(ci.low), float(ci.high), p, test)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Setting A against setting B (or A's Mean baseline), the other settings shared.

    ``n_labeled`` is None for the final rows, else the cycle's labeled-image count."""

    experiment: str
    method: str
    dataset: str
    varied: str  # the swept key that differs, or MEAN_BASELINE
    a: Any
    b: Any
    shared: tuple[tuple[str, Any], ...]
    n_labeled: int | None
    result: PairedTest


def _unit_values(rows: pd.DataFrame, column: str, pooled_cols: list[str]) -> pd.Series:
    """``column`` indexed by (seed, pooled settings...); duplicates averaged; NaN and seedless rows dropped."""
    index = ["seed"] + pooled_cols
    values = rows.assign(_v=pd.to_numeric(rows[column], errors="coerce")).dropna(subset=["_v", "seed"])
    return values.groupby(index, dropna=False)["_v"].mean()


def _per_seed_differences(a: pd.Series, b: pd.Series) -> np.ndarray:
    """A − B on the units both have, then averaged within each seed (over the pooled folds)."""
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    if joined.empty:
        return np.array([])
    diff = joined["a"] - joined["b"]
    return diff.groupby(level=0).mean().to_numpy(dtype=np.float64)


def _one_key_apart(a: GroupKey, b: GroupKey) -> str | None:
    if (a.experiment, a.method, a.dataset) != (b.experiment, b.method, b.dataset):
        return None
    differing = [k for (k, va), (_, vb) in zip(a.settings, b.settings) if va != vb]
    return differing[0] if len(differing) == 1 else None


def _compare(groups: list[tuple[GroupKey, pd.DataFrame]], pooled_cols: list[str], n_labeled: int | None) -> list[Comparison]:
    """Every pair one key apart, then every group against its Mean baseline."""
    mae = [(key, _unit_values(rows, "mae", pooled_cols)) for key, rows in groups]
    out = []
    for (ka, va), (kb, vb) in itertools.combinations(mae, 2):
        varied = _one_key_apart(ka, kb)
        if varied is None:
            continue
        settings_a, settings_b = dict(ka.settings), dict(kb.settings)
        shared = tuple((k, v) for k, v in ka.settings if k != varied)
        out.append(Comparison(ka.experiment, ka.method, ka.dataset, varied, settings_a[varied], settings_b[varied], shared,
                              n_labeled, paired_test(_per_seed_differences(va, vb))))
    for (key, rows), (_, values) in zip(groups, mae):
        if "mean_baseline_mae" not in rows or not rows["mean_baseline_mae"].notna().any():
            continue
        baseline = _unit_values(rows, "mean_baseline_mae", pooled_cols)
        out.append(Comparison(key.experiment, key.method, key.dataset, MEAN_BASELINE, "MAE", "Mean baseline MAE",
                              key.settings, n_labeled, paired_test(_per_seed_differences(values, baseline))))
    return out


def _sorted_groups(frame: pd.DataFrame, keys: list[str], results: ResultsSet, extra: list[str] = ()):
    order = {name: i for i, name in enumerate(dict.fromkeys(results.frame["experiment"].astype(str)))}
    grouped = [(key, tuple(values), rows) for key, values, rows in _groups(frame, keys, list(extra))]
    return sorted(grouped, key=lambda g: (group_sort_key(g[0], results.configs, order), g[1]))


def paired_comparisons(results: ResultsSet, pool_over: tuple[str, ...] = ()) -> list[Comparison]:
    """Final-row comparisons, then AL-AC's per-cycle ones (by labeled images)."""
    frame = results.frame
    if "seed" not in frame:
        return []
    keys = setting_keys(frame, pool_over)
    pooled_cols = pooled_columns(frame, pool_over)
    final = final_rows(frame)
    ok = final[final["status"] == "ok"]
    out = _compare([(k, rows) for k, _, rows in _sorted_groups(ok, keys, results)], pooled_cols, None)
    if "n_labeled" not in frame:
        return out
    cycles = frame[(frame["method"] == "alac") & (frame["status"] == "ok") & frame["n_labeled"].notna()]
    by_cycle: dict[int, list] = {}
    for key, (n_labeled,), rows in _sorted_groups(cycles, keys, results, ["n_labeled"]):
        by_cycle.setdefault(int(n_labeled), []).append((key, rows))
    per_cycle = [c for n, groups in sorted(by_cycle.items()) for c in _compare(groups, pooled_cols, n)]
    order = {id(c): i for i, c in enumerate(per_cycle)}
    # one comparison's cycles together: sort by what is compared, then by labeled images
    per_cycle.sort(key=lambda c: (c.varied == MEAN_BASELINE, c.experiment, c.dataset, c.varied, str(c.a), str(c.b),
                                  str(c.shared), c.n_labeled, order[id(c)]))
    return out + per_cycle


def comparison_record(c: Comparison) -> dict:
    """One CSV row: full precision."""
    record = {"experiment": c.experiment, "method": c.method, "dataset": c.dataset,
              "at": "final" if c.n_labeled is None else "cycle", "n_labeled": c.n_labeled, "varied": c.varied,
              "a": c.a, "b": c.b}
    r = c.result
    record |= {"n_pairs": r.n, "mean_diff_a_minus_b": r.mean, "ci95_low": r.ci_low, "ci95_high": r.ci_high,
               "p_value": r.p, "test": r.test}
    return record | {SETTING_PREFIX + k: v for k, v in c.shared}


def paired_csv(comparisons: list[Comparison]) -> str:
    columns = ["experiment", "method", "dataset", "at", "n_labeled", "varied", "a", "b", "n_pairs", "mean_diff_a_minus_b",
               "ci95_low", "ci95_high", "p_value", "test"]
    frame = pd.DataFrame.from_records([comparison_record(c) for c in comparisons])
    if frame.empty:
        return ",".join(columns) + "\n"
    frame["n_labeled"] = frame["n_labeled"].astype("Int64")
    return frame.to_csv(index=False, lineterminator="\n")


__all__ = ["CONFIDENCE", "MEAN_BASELINE", "TEST_RULE", "WILCOXON_MIN_N", "Comparison", "PairedTest", "comparison_record",
           "paired_comparisons", "paired_csv", "paired_test"]
