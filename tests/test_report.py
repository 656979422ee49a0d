"""The report CLI on Parquet files written here: exact mean ± std, failures counted, the paper's
numbers matched, markdown/latex/csv, figures, and clear errors."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_report

from orchestrator import report
from orchestrator.core.results import ROW_COLUMNS, rows_frame
from orchestrator.report.paper import MISSING, PaperFormatError, best_match, normalise, parse_paper

PAPER = {
    "source": "AL-AC, Table 1 (test)",
    "metric_names": {"mae": "MAE", "rmse": "MSE"},
    "results": [
        {"dataset": "shanghaitech_a", "settings": {"alac.strategy": "pssw", "alac.budget": 40},
         "mae": 85.4, "mae_std": 2.5, "rmse": 144.7, "label": "PSSW"},
        {"dataset": "shanghaitech_a", "settings": {"alac.strategy": "random", "alac.budget": 30},
         "mae": 102.1, "label": "RS at M=30"},  # budget 30: matches no run (ours is 40)
        {"dataset": "shanghaitech_a", "settings": {"alac.strategy": "pssw", "n_labeled": 10}, "mae": 121.2},
    ],
}
GRID = {"alac.strategy": ["pssw", "random", "global_diff"]}


def _row(trial: str, strategy: str, seed: int, cycle: int, mae: float, rmse: float, status: str = "ok",
         error: str = "", **extra) -> dict:
    return {"experiment": "tab", "method": "alac", "dataset": "shanghaitech_a", "scale": "paper", "trial_id": trial,
            "seed": seed, "cycle": cycle, "stage": "cycle" if status == "ok" else "failed",
            "n_labeled": 10 * cycle if status == "ok" else np.nan, "labeled_points": 100 * cycle,
            "mae": mae, "rmse": rmse, "status": status, "error": error, "strategy": strategy,
            "setting.alac.strategy": strategy, **extra}


def _rows() -> list[dict]:
    """pssw: final MAE 10, 12, 14 (mean 12, sample std 2) and RMSE 20, 22, 27 (mean 23, std
    sqrt(13) = 3.61); random: 20, 21 ok (mean 20.5, std 0.71) + one failed; global_diff: n = 1."""
    rows = []
    for seed, (mae, rmse) in enumerate([(10, 20), (12, 22), (14, 27)]):
        rows.append(_row(f"p{seed}", "pssw", seed, 1, 30.0 + seed, 40.0))
        rows.append(_row(f"p{seed}", "pssw", seed, 2, float(mae), float(rmse)))
    for seed, mae in enumerate([20.0, 21.0]):
        # written out of order: the final row is the largest cycle, not the last line
        rows.append(_row(f"r{seed}", "random", seed, 2, mae, 30.0))
        rows.append(_row(f"r{seed}", "random", seed, 1, 50.0, 60.0))
    rows.append(_row("r2", "random", 2, 1, 55.0, 66.0))
    rows.append(_row("r2", "random", 2, 2, np.nan, np.nan, status="failed", error="RuntimeError: boom\ntraceback"))
    rows.append(_row("g0", "global_diff", 0, 2, 5.5, 6.5))
    return rows


def _write(directory: Path, rows: list[dict], config: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows_frame(rows).to_parquet(directory / "results.parquet", index=False)
    if config is not None:
        (directory / "experiment.json").write_text(json.dumps(config))
    return directory


def _config(**changes) -> dict:
    config = {"experiment": "tab", "method": "alac", "alac": {"budget": 40, "per_cycle": 10}, "grid": GRID,
              "paper": PAPER}
    config.update(changes)
    return config


def _cells(line: str) -> list[str]:
    """The cells of one markdown table line (pandas pads them; ``\\|`` is an escaped pipe)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _has_row(text: str, cells: list[str]) -> bool:
    """Some table line of ``text`` holds ``cells`` as consecutive cells."""
    n = len(cells)
    return any(row[i:i + n] == cells for row in (_cells(line) for line in text.splitlines() if line.startswith("|"))
               for i in range(len(row) - n + 1))




@pytest.fixture()
def results_dir(tmp_path) -> Path:
    return _write(tmp_path / "tab", _rows(), _config())


def test_markdown_exact_numbers_failures_and_paper(results_dir):
    code, out, _ = run_report(str(results_dir))
    assert code == 0
    lines = out.splitlines()
    assert _cells(lines[0]) == ["method", "dataset", "strategy", "labeled", "MAE", "RMSE", "n", "failed", "paper MAE", "paper MSE"]
    assert lines[1].startswith("|:---") and lines[1].rstrip("|").endswith(":")  # text left, numbers right
    assert _cells(lines[2]) == ["alac", "shanghaitech_a", "pssw", "20", "12.00 ± 2.00", "23.00 ± 3.61", "3", "0",
                                "85.4 ± 2.5", "144.7"]
    # the failed trial is counted, not averaged; the paper's RS row names budget 30 and matches nothing
    assert _cells(lines[3]) == ["alac", "shanghaitech_a", "random", "20", "20.50 ± 0.71", "30.00 ± 0.00", "2", "1", "", ""]
    assert _cells(lines[4]) == ["alac", "shanghaitech_a", "global_diff", "20", "5.50 ± -", "6.50 ± -", "1", "0", "", ""]
    assert "r2: RuntimeError: boom" in out and "traceback" not in out
    assert "no run matches paper result RS at M=30" in out and "102.1" in out


def test_per_cycle_table_matches_paper_by_labeled_images(results_dir):
    _, out, _ = run_report(str(results_dir))
    cycles = out.split("### MAE against labeled images")[1]
    # cycle 1 of pssw: MAE 30, 31, 32 -> 31 ± 1; the paper's n_labeled = 10 entry sits beside it
    assert _has_row(cycles, ["shanghaitech_a", "pssw", "10", "31.00 ± 1.00", "40.00 ± 0.00", "3", "121.2"])
    # random cycle 1: three ok rows (the failed trial's first cycle finished)
    assert _has_row(cycles, ["shanghaitech_a", "random", "10", "51.67 ± 2.89", "62.00 ± 3.46", "3", ""])


def test_latex_is_booktabs_and_escaped(results_dir):
    code, out, _ = run_report(str(results_dir), "--format", "latex")
    assert code == 0
    assert out.startswith("\\begin{tabular}{lllrrrrrrr}\n\\toprule\n")
    assert "alac & shanghaitech\\_a & pssw & 20 & 12.00 $\\pm$ 2.00 & 23.00 $\\pm$ 3.61 & 3 & 0 & 85.4 $\\pm$ 2.5 & 144.7 \\\\" in out
    assert "\\bottomrule\n\\end{tabular}" in out
    assert "\n% failed trial" in out


def test_csv_full_precision(results_dir):
    code, out, _ = run_report(str(results_dir), "--format", "csv")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    pssw = table[table["setting.alac.strategy"] == "pssw"].iloc[0]
    assert pssw["mae_mean"] == pytest.approx(12.0) and pssw["mae_std"] == pytest.approx(2.0)
    assert pssw["rmse_std"] == pytest.approx(math.sqrt(13.0))
    assert pssw["paper_mae"] == pytest.approx(85.4) and pssw["paper_mae_std"] == pytest.approx(2.5)
    random = table[table["setting.alac.strategy"] == "random"].iloc[0]
    assert (random["n"], random["failed"]) == (2, 1)
    assert math.isnan(table[table["setting.alac.strategy"] == "global_diff"].iloc[0]["mae_std"])
    assert list(table["setting.alac.strategy"]) == ["pssw", "random", "global_diff"]  # the config's grid order


def test_paper_file_option_and_no_match_at_other_scales(results_dir, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("paper:\n  source: other\n  results:\n"
                     "    - {dataset: shanghaitech_a, settings: {alac.strategy: random}, mae: 99.0, rmse: 98.0}\n")
    _, out, _ = run_report(str(results_dir), "--paper", str(other))
    assert _has_row(out, ["random", "20", "20.50 ± 0.71", "30.00 ± 0.00", "2", "1", "99.0", "98.0"])
    # a smoke run (budget 6) matches none of the paper's budget-40 numbers
    smoke = _write(tmp_path / "smoke", _rows(), _config(alac={"budget": 6}))
    _, out, _ = run_report(str(smoke))
    assert "paper MAE" not in out.splitlines()[0]
    assert "no run matches paper result PSSW [shanghaitech_a; alac.strategy=pssw, alac.budget=40]" in out
    # with no result matching at all, one line says so instead of listing them
    none = tmp_path / "none.yaml"
    none.write_text("paper:\n  source: Table X\n  results:\n    - {dataset: ucf_cc_50, mae: 1.0}\n")
    _, out, _ = run_report(str(smoke), "--paper", str(none))
    assert "paper numbers (Table X): none of its 1 results match these runs' settings" in out


def test_pool_over_averages_folds_into_one_row(tmp_path):
    rows = []
    for fold, maes in ((1, (10.0, 20.0)), (2, (30.0, 40.0))):
        for seed, mae in enumerate(maes):
            rows.append(_row(f"f{fold}s{seed}", "pssw", seed, 1, mae, mae, **{"setting.dataset.options.fold": fold}))
    directory = _write(tmp_path / "ucf", rows, _config(grid={"alac.strategy": ["pssw"], "dataset.options.fold": [1, 2]},
                                                        paper=None))
    _, out, _ = run_report(str(directory))
    assert "fold" in _cells(out.splitlines()[0]) and len([l for l in out.splitlines() if l.startswith("| alac")]) == 2
    _, out, _ = run_report(str(directory), "--pool", "dataset.options.fold")
    body = [_cells(l) for l in out.splitlines() if l.startswith("| alac")]
    # folds averaged within each seed first (seed 0: 20, seed 1: 30), then mean ± std over the 2 seeds
    assert body == [["alac", "shanghaitech_a", "pssw", "10", "25.00 ± 7.07", "25.00 ± 7.07", "2", "0", "2"]]
    assert _cells(out.splitlines()[0])[-1] == "folds per seed"


def test_several_dirs_and_suite_folder(results_dir, tmp_path):
    rows = [dict(r, experiment="tab_b", dataset="shanghaitech_b") for r in _rows()]
    other = _write(tmp_path / "tab_b", rows, dict(_config(), experiment="tab_b"))
    _, out, _ = run_report(str(results_dir), str(other), "--no-report")  # the tables only: no report paths
    assert _cells(out.splitlines()[0])[:3] == ["experiment", "method", "dataset"]
    assert _has_row(out, ["tab_b", "alac", "shanghaitech_b", "pssw"])
    _, suite_out, _ = run_report(str(tmp_path), "--no-report")  # the parent holds both experiment folders
    assert suite_out == out


def test_render_table_for_the_sweep_summary():
    text = report.render_table(rows_frame(_rows()))
    assert _has_row(text, ["alac", "shanghaitech_a", "pssw", "20", "12.00 ± 2.00", "23.00 ± 3.61", "3", "0"])


def test_errors_name_the_path_or_column(tmp_path):
    code, _, err = run_report(str(tmp_path / "nope"))
    assert code == 2 and "results directory not found" in err and "nope" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_report(str(tmp_path / "empty"))
    assert code == 2 and "results.parquet" in err and "empty" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    rows_frame(_rows()).drop(columns=["mae"]).to_parquet(bad / "results.parquet")
    code, _, err = run_report(str(bad))
    assert code == 2 and "missing required column(s) ['mae']" in err and str(bad) in err
    (bad / "results.parquet").write_text("not parquet")
    code, _, err = run_report(str(bad))
    assert code == 2 and "not a readable Parquet file" in err
    broken = _write(tmp_path / "broken", _rows(), _config(paper={"results": [{"dataset": "x", "mea": 1.0}]}))
    code, _, err = run_report(str(broken))
    assert code == 2 and "unknown key(s) ['mea']" in err


def test_paper_matching_rules():
    ref = parse_paper(PAPER)
    assert ref.metric_names == {"mae": "MAE", "rmse": "MSE"}
    values = {"alac.strategy": "pssw", "alac.budget": 40}
    assert best_match(ref.results, "shanghaitech_a", lambda k: values.get(k, MISSING)).mae == 85.4
    assert best_match(ref.results, "shanghaitech_b", lambda k: values.get(k, MISSING)) is None
    assert best_match(ref.results, "shanghaitech_a", lambda k: {"alac.budget": 40}.get(k, MISSING)) is None
    # the entry naming more settings wins when two match
    specific = parse_paper({"results": [{"dataset": "a", "settings": {"alac.strategy": "pssw"}, "mae": 1.0},
                                        {"dataset": "a", "settings": {"alac.strategy": "pssw", "n_labeled": 10}, "mae": 2.0}]})
    at = lambda n: lambda k: {"alac.strategy": "pssw", "n_labeled": n}.get(k, MISSING)  # noqa: E731
    assert best_match(specific.results, "a", at(10)).mae == 2.0
    assert best_match(specific.results, "a", at(20)).mae == 1.0
    assert normalise(True) != normalise(1) and normalise(40) == normalise(40.0) and normalise("10") != normalise(10)
    assert normalise(np.float64("nan")) is MISSING
    with pytest.raises(PaperFormatError, match=r"paper.results\[0\].mae: expected a number"):
        parse_paper({"results": [{"dataset": "a", "mae": "87.9"}]})
    with pytest.raises(PaperFormatError, match="names neither mae nor rmse"):
        parse_paper({"results": [{"dataset": "a"}]})


def _selection_rows() -> list[dict]:
    rng = np.random.default_rng(0)
    counts = np.concatenate([rng.normal(50, 10, 60), rng.normal(300, 40, 25), rng.normal(900, 80, 8)])
    extra = {"partition_breaks": json.dumps([120.0, 500.0]), "pool_predicted_counts": json.dumps(counts.round(2).tolist()),
             "selected_partitions": json.dumps([0, 1, 2, 2])}
    rows = _rows()
    rows[0].update(extra)
    return rows


def test_figures_are_written(tmp_path):
    directory = _write(tmp_path / "tab", _selection_rows(), _config())
    rng = np.random.default_rng(1)
    examples = {"ids": np.array(["test/IMG_1", "test/IMG_2"])}
    for i in range(2):
        examples[f"image_{i}"] = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
        examples[f"target_{i}"] = rng.random((8, 12)).astype(np.float32)
        examples[f"predicted_{i}"] = rng.random((8, 12)).astype(np.float32)
    (directory / "examples").mkdir()
    np.savez(directory / "examples" / "p0.npz", **examples)
    figures = tmp_path / "figs"
    code, out, _ = run_report(str(directory), "--figures", str(figures))
    assert code == 0
    for name in ("mae_vs_budget.png", "mae_vs_points.png", "partitions.png", "density_examples.png"):
        data = (figures / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"figure: {figures / name}" in out
    assert not list(figures.glob(".*tmp"))


def test_one_colour_per_strategy_in_every_figure():
    from orchestrator.report.figures import STRATEGY_COLORS, color_map, strategy_of

    assert strategy_of((("alac.strategy", "pssw"), ("alac.alignment", True))) == "pssw"
    assert strategy_of((("cssccnn.baseline", "mean"),)) == "mean"
    first, second = color_map(["random", "pssw", "zeta", "alpha"]), color_map(["alpha", "zeta"])
    assert first["pssw"] == STRATEGY_COLORS["pssw"] and first["random"] == STRATEGY_COLORS["random"] != first["pssw"]
    assert first["alpha"] == second["alpha"] != first["zeta"] == second["zeta"]  # order-free, fixed
    assert len(set(first.values())) == len(first)  # no two strategies share a colour


def test_figures_skip_with_a_note_when_data_is_absent(tmp_path):
    rows = [dict(r, method="cssccnn") for r in _rows()]
    directory = _write(tmp_path / "css", rows)
    code, out, _ = run_report(str(directory), "--figures", str(tmp_path / "figs"))
    assert code == 0
    assert "figure skipped: mae_vs_budget.png" in out and "figure skipped: partitions.png" in out
    assert "figure skipped: density_examples.png" in out
    assert not list((tmp_path / "figs").glob("*.png"))


def test_schema_columns_are_the_results_module_ones():
    assert set(report.REQUIRED_COLUMNS) <= set(ROW_COLUMNS)


def test_paper_numbers_only_beside_paper_scale_runs(tmp_path):
    """A smoke run is not compared with the paper even when its settings match; folds still pool."""
    rows = [dict(r, scale="smoke", **{"setting.dataset.options.fold": 1 + i % 2}) for i, r in enumerate(_rows())]
    paper = dict(PAPER, pool_over=["dataset.options.fold"])
    directory = _write(tmp_path / "tab", rows, _config(scale="smoke", paper=paper))
    code, out, _ = run_report(str(directory))
    assert code == 0
    assert "paper MAE" not in out.splitlines()[0] and "85.4" not in out
    assert "paper numbers (AL-AC, Table 1 (test)) not compared with tab: it ran at scale smoke" in out
    assert "fold" not in _cells(out.splitlines()[0])  # pooled over folds all the same
    # seeds 0, 1, 2 each ran one fold here: the per-seed means are the trials' own numbers
    assert _has_row(out, ["alac", "shanghaitech_a", "pssw", "20", "12.00 ± 2.00", "23.00 ± 3.61", "3", "0", "1"])


def test_alac_tables_show_the_mean_baseline_beside_the_mae(tmp_path):
    rows = _rows()
    for row in rows:
        row["mean_baseline_mae"] = 40.0 + row["seed"] if row["status"] == "ok" else np.nan
    directory = _write(tmp_path / "res", rows)
    code, out, _ = run_report(str(directory))
    assert code == 0
    lines = out.splitlines()
    assert _cells(lines[0])[-3:] == ["n", "failed", "Mean baseline MAE"]
    pssw = next(_cells(line) for line in lines if "pssw" in _cells(line))
    assert pssw[-3:] == ["3", "0", "41.00 ± 1.00"]  # seeds 0, 1, 2
    cycle_header = next(_cells(line) for line in lines if _cells(line)[:3] == ["dataset", "strategy", "labeled"])
    assert cycle_header[-2:] == ["n", "Mean baseline MAE"]
