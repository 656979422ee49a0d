"""Paired statistics (issue 16 item 3) and k-fold statistics over seeds (issue 13 item 3) on
hand-made rows whose answers are known, compared with scipy directly."""

from __future__ import annotations

import io
import math
import re
from contextlib import redirect_stderr

import numpy as np
import pandas as pd
import pytest
from conftest import run_report
from scipy import stats

from orchestrator import report
from orchestrator.core.results import rows_frame
from orchestrator.report.paired import WILCOXON_MIN_N, paired_test

# final MAE per seed: pssw is 2, 3, 1, 4, 2 lower than random on seeds 0..4; seed 5 only ran pssw
PSSW = [10.0, 12.0, 14.0, 11.0, 13.0, 9.0]
RANDOM = [12.0, 15.0, 15.0, 15.0, 15.0]


def _row(strategy: str, seed: int, cycle: int, mae: float, experiment: str = "ex", method: str = "alac", **extra) -> dict:
    settings = {k: v for k, v in extra.items() if k.startswith("setting.")}
    trial = f"{strategy}-{'-'.join(str(v) for v in settings.values())}-s{seed}"
    return {"experiment": experiment, "method": method, "dataset": "shanghaitech_a", "scale": "smoke", "trial_id": trial,
            "seed": seed, "cycle": cycle, "stage": "cycle", "n_labeled": 10 * cycle, "mae": mae, "rmse": mae + 5.0,
            "status": "ok", "error": "", "setting.alac.strategy": strategy, **extra}


def _write(directory, rows):
    directory.mkdir(parents=True, exist_ok=True)
    rows_frame(rows).to_parquet(directory / "results.parquet", index=False)
    return directory




def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _table_after(text: str, title: str) -> list[list[str]]:
    """Body rows of the markdown table that follows the heading containing ``title``."""
    lines = text.split(title, 1)[1].splitlines()
    rows, started = [], False
    for line in lines[1:]:
        if line.startswith("|"):
            started = True
            rows.append(_cells(line))
        elif started:
            break
    assert rows, title
    return rows[2:]


def test_paired_t_below_ten_pairs_matches_scipy():
    a, b = np.array(PSSW[:5]), np.array(RANDOM)
    result = paired_test(a - b)
    expected = stats.ttest_rel(a, b)
    assert (result.n, result.test) == (5, "paired t")
    assert result.mean == pytest.approx(-2.4)
    assert result.p == pytest.approx(expected.pvalue, rel=1e-12)
    low, high = stats.t.interval(0.95, 4, loc=-2.4, scale=stats.sem(a - b))
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_wilcoxon_from_ten_pairs_matches_scipy():
    rng = np.random.default_rng(3)
    a = rng.normal(100, 10, WILCOXON_MIN_N + 2)
    b = a + rng.normal(3, 2, a.size)
    result = paired_test(a - b)
    assert (result.n, result.test) == (12, "Wilcoxon")
    assert result.p == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-12)
    assert result.ci_low < result.mean < result.ci_high < 0
    assert paired_test((a - b)[:9]).test == "paired t"


def test_degenerate_differences():
    assert paired_test([0.0, 0.0, 0.0]).test == "identical" and paired_test([0.0, 0.0]).p == 1.0
    single = paired_test([2.0, math.nan])
    assert single.n == 1 and single.test == "none (n < 2)" and math.isnan(single.p)
    constant = paired_test([2.0, 2.0, 2.0])
    assert constant.test == "none (all differences equal)" and math.isnan(constant.p) and constant.mean == 2.0
    assert paired_test([]).n == 0


def _strategy_rows() -> list[dict]:
    rows = []
    for strategy, maes in (("pssw", PSSW), ("random", RANDOM)):
        for seed, mae in enumerate(maes):
            rows.append(_row(strategy, seed, 1, 50.0 + seed))  # the same first cycle for both strategies
            rows.append(_row(strategy, seed, 2, mae))
    return rows


def test_paired_rows_in_markdown_latex_and_csv(tmp_path):
    directory = _write(tmp_path / "ex", _strategy_rows())
    code, out, _ = run_report(str(directory))
    assert code == 0
    expected = stats.ttest_rel(PSSW[:5], RANDOM)
    low, high = expected.confidence_interval(0.95)
    final = _table_after(out, "Paired differences of the final MAE")
    # seed 5 ran pssw only: 5 pairs, not 6
    assert final == [["shanghaitech_a", "strategy", "pssw", "random", "", "5", "-2.40", f"[{low:.2f}, {high:.2f}]",
                      f"{expected.pvalue:.3f}", "paired t"]]
    cycles = _table_after(out, "Paired differences of the MAE at every cycle")
    assert cycles[0][5:] == ["10", "5", "0.00", "[0.00, 0.00]", "1.000", "identical"]
    assert cycles[1][5:7] == ["20", "5"]
    assert "Wilcoxon signed-rank from n = 10" in out
    _, latex, _ = run_report(str(directory), "--format", "latex")
    assert (f"shanghaitech\\_a & strategy & pssw & random &  & 5 & -2.40 & [{low:.2f}, {high:.2f}] & "
            f"{expected.pvalue:.3f} & paired t \\\\") in latex
    _, csv, _ = run_report(str(directory), "--format", "csv", "--table", "paired")
    table = pd.read_csv(io.StringIO(csv))
    final_csv = table[table["at"] == "final"].iloc[0]
    assert (final_csv["varied"], final_csv["a"], final_csv["b"], final_csv["n_pairs"]) == ("alac.strategy", "pssw", "random", 5)
    assert final_csv["mean_diff_a_minus_b"] == pytest.approx(-2.4)
    assert final_csv["p_value"] == pytest.approx(expected.pvalue) and final_csv["ci95_low"] == pytest.approx(low)
    assert list(table.loc[table["at"] == "cycle", "n_labeled"]) == [10, 20]


def test_only_settings_one_key_apart_are_paired(tmp_path):
    rows = []
    for strategy, alignment, offset in (("pssw", True, 0.0), ("random", False, 5.0), ("random", True, 1.0)):
        for seed in range(3):
            rows.append(_row(strategy, seed, 1, 10.0 + offset + seed * (1 + offset), **{"setting.alac.alignment": alignment}))
    _, csv, _ = run_report(str(_write(tmp_path / "ex", rows)), "--format", "csv", "--table", "paired")
    table = pd.read_csv(io.StringIO(csv))
    final = table[table["at"] == "final"]
    pairs = {(r["varied"], r["a"], r["b"]) for _, r in final.iterrows()}
    # pssw+aligned vs random+unaligned differ in two keys: never compared
    assert pairs == {("alac.strategy", "pssw", "random"), ("alac.alignment", "False", "True")}
    strategy = final[final["varied"] == "alac.strategy"].iloc[0]
    assert strategy["setting.alac.alignment"] and strategy["mean_diff_a_minus_b"] == pytest.approx(-2.0)


def test_mean_baseline_and_cssccnn_baselines_are_compared(tmp_path):
    rows = _strategy_rows()
    for row in rows:
        row["mean_baseline_mae"] = row["mae"] + 10.0 + row["seed"]  # baseline worse by 10 + seed
    _, csv, _ = run_report(str(_write(tmp_path / "alac", rows)), "--format", "csv", "--table", "paired")
    table = pd.read_csv(io.StringIO(csv))
    mean = table[(table["at"] == "final") & (table["varied"] == "Mean baseline")]
    assert set(mean["setting.alac.strategy"]) == {"pssw", "random"}
    pssw = mean[mean["setting.alac.strategy"] == "pssw"].iloc[0]
    assert (pssw["n_pairs"], pssw["mean_diff_a_minus_b"]) == (6, pytest.approx(-12.5))  # -(10 + mean of 0..5)
    css = []
    for baseline, maes in (("none", [200.0, 210.0, 190.0]), ("mean", [280.0, 285.0, 290.0]), ("pprior", [270.0, 260.0, 280.0])):
        for seed, mae in enumerate(maes):
            row = _row("x", seed, 2, mae, method="cssccnn", **{"setting.cssccnn.baseline": baseline})
            css.append({k: v for k, v in row.items() if k != "setting.alac.strategy"})
    code, out, _ = run_report(str(_write(tmp_path / "css", css)))
    assert code == 0
    final = _table_after(out, "Paired differences of the final MAE")
    # without a config's grid order, A and B are in text order: mean, none, pprior
    assert [r[2:4] + [r[6]] for r in final] == [["mean", "none", "85.00"], ["mean", "pprior", "15.00"],
                                                ["none", "pprior", "-70.00"]]


def _fold_rows() -> list[dict]:
    """Seed 0 ran folds 1 and 2 (MAE 10, 30 -> 20), seed 1 fold 1 only (20), seed 2 both (40, 60 -> 50)."""
    rows = []
    for strategy, shift in (("pssw", 0.0), ("random", 4.0)):
        for seed, fold, mae in ((0, 1, 10.0), (0, 2, 30.0), (1, 1, 20.0), (2, 1, 40.0), (2, 2, 60.0)):
            if strategy == "random" and seed == 2 and fold == 2:
                continue  # random's seed 2 did not complete fold 2
            rows.append(_row(strategy, seed, 1, mae + shift * (1 + fold), **{"setting.dataset.options.fold": fold}))
    return rows


def test_folds_are_averaged_within_each_seed_first(tmp_path):
    directory = _write(tmp_path / "ucf", _fold_rows())
    code, out, _ = run_report(str(directory), "--pool", "dataset.options.fold")
    assert code == 0
    lines = out.splitlines()
    assert _cells(lines[0])[-1] == "folds per seed"
    pssw = next(_cells(line) for line in lines if _cells(line)[:3] == ["alac", "shanghaitech_a", "pssw"])
    # seed means 20, 20, 50 -> 30 ± 17.32 over 3 seeds (pooling all 5 trials would give 32 ± 19.24)
    std = float(np.std([20.0, 20.0, 50.0], ddof=1))
    assert pssw[4:] == [f"30.00 ± {std:.2f}", f"35.00 ± {std:.2f}", "3", "0", "seed 0: 2, seed 1: 1, seed 2: 2"]
    random = next(_cells(line) for line in lines if _cells(line)[:3] == ["alac", "shanghaitech_a", "random"])
    assert random[6:] == ["3", "0", "seed 0: 2, seed 1: 1, seed 2: 1"]
    assert "each seed's results averaged first, then mean ± std over seeds" in out
    _, csv, _ = run_report(str(directory), "--pool", "dataset.options.fold", "--format", "csv")
    table = pd.read_csv(io.StringIO(csv))
    row = table[table["setting.alac.strategy"] == "pssw"].iloc[0]
    assert (row["seeds"], row["pooled_per_seed"]) == (3, "0:2;1:1;2:2") and row["mae_std"] == pytest.approx(std)
    # paired within seed over the folds both completed: seed 0 (-8 - 12) / 2 = -10, seed 1 -8, seed 2 -8
    _, csv, _ = run_report(str(directory), "--pool", "dataset.options.fold", "--format", "csv", "--table", "paired")
    paired = pd.read_csv(io.StringIO(csv)).iloc[0]
    assert paired["n_pairs"] == 3 and paired["mean_diff_a_minus_b"] == pytest.approx(np.mean([-10.0, -8.0, -8.0]))
    assert paired["p_value"] == pytest.approx(stats.ttest_1samp([-10.0, -8.0, -8.0], 0.0).pvalue)


def test_unknown_csv_table_is_refused(tmp_path):
    directory = _write(tmp_path / "ex", _strategy_rows())
    with pytest.raises(SystemExit) as stopped, redirect_stderr(io.StringIO()):
        report.main([str(directory), "--format", "csv", "--table", "nope"])
    assert stopped.value.code == 2
