"""The report file (issue 16 item 2): report.md and a self-contained report.html written by
``python -m orchestrator.report DIR``, with the tables, paired comparisons, figures embedded,
failed trials and what produced the results; its path printed last."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pandas as pd
from conftest import run_report

from orchestrator.core.results import rows_frame
from orchestrator.report.document import config_hash, write_folder_report

CONFIG = {"experiment": "ex", "method": "alac", "scale": "smoke", "grid": {"alac.strategy": ["pssw", "random"]}}


def _rows() -> list[dict]:
    rows = []
    for strategy, maes in (("pssw", [10.0, 12.0, 14.0]), ("random", [12.0, 15.0, 15.0])):
        for seed, mae in enumerate(maes):
            for cycle, value in ((1, 50.0 + seed), (2, mae)):
                rows.append({"experiment": "ex", "method": "alac", "dataset": "synthetic", "scale": "smoke",
                             "trial_id": f"{strategy}-s{seed}", "seed": seed, "cycle": cycle, "stage": "cycle",
                             "n_labeled": 4 * cycle, "mae": value, "rmse": value + 1.0, "status": "ok", "error": "",
                             "code_version": "abc1234", "command": "python -m orchestrator.sweep --config x.yaml",
                             "mean_baseline_mae": value + 20.0, "setting.alac.strategy": strategy})
    rows.append({**rows[-1], "trial_id": "random-s3", "seed": 3, "cycle": 2, "mae": np.nan, "rmse": np.nan,
                 "status": "failed", "error": "RuntimeError: out of memory\nTraceback ...", "mean_baseline_mae": np.nan})
    return rows


def _write(directory, rows=None):
    directory.mkdir(parents=True, exist_ok=True)
    rows_frame(rows or _rows()).to_parquet(directory / "results.parquet", index=False)
    (directory / "experiment.json").write_text(json.dumps(CONFIG))
    return directory




def test_report_files_hold_tables_comparisons_figures_and_failures(tmp_path):
    directory = _write(tmp_path / "ex")
    code, out, _ = run_report(str(directory))
    assert code == 0
    assert out.splitlines()[-2:] == [f"report: {directory / 'report.md'}", f"report: {directory / 'report.html'}"]
    markdown = (directory / "report.md").read_text()
    for title in ("## Results", "## MAE against labeled images", "## Paired differences of the final MAE",
                  "## Paired differences of the MAE at every cycle", "## Figures", "## Failed trials"):
        assert title in markdown, title
    assert re.search(r"\| pssw +\| random +\| +\| +3 \| +-2\.00 \|", markdown)  # A − B over the 3 seeds both ran
    assert "vs Mean baseline" in markdown and "Mean baseline MAE" in markdown
    assert "![MAE against labeled images (AL-AC Fig. 4)](figures/mae_vs_budget.png)" in markdown
    assert re.search(r"\| ex +\| random-s3 \| 3 +\| strategy=random \| 2 +\| RuntimeError: out of memory \|", markdown)
    assert "Traceback" not in markdown
    assert f"config hash {config_hash(CONFIG)}" in markdown and "code version abc1234" in markdown
    assert "sweep command `python -m orchestrator.sweep --config x.yaml`" in markdown
    assert "figure skipped: partitions.png" in markdown
    page = (directory / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "src='figures" not in page
    embedded = [base64.b64decode(b) for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]
    assert embedded == [(directory / "figures" / "mae_vs_budget.png").read_bytes()]
    assert "<td>RuntimeError: out of memory</td>" in page and "<h2>Paired differences of the final MAE" in page
    assert not list(directory.rglob("*.tmp*"))


def test_csv_keeps_stdout_one_csv_and_out_option(tmp_path):
    directory = _write(tmp_path / "ex")
    code, out, err = run_report(str(directory), "--format", "csv", "--out", str(tmp_path / "rep"), "--figures", str(tmp_path / "f"))
    assert code == 0
    assert list(pd.read_csv(io.StringIO(out))["setting.alac.strategy"]) == ["pssw", "random"]
    assert err.splitlines()[-1] == f"report: {tmp_path / 'rep' / 'report.html'}"
    assert (tmp_path / "f" / "mae_vs_budget.png").is_file() and not (directory / "report.md").exists()
    markdown = (tmp_path / "rep" / "report.md").read_text()
    assert "](../f/mae_vs_budget.png)" in markdown  # relative to the report


def test_no_report_and_unwritable_output(tmp_path):
    directory = _write(tmp_path / "ex")
    code, out, _ = run_report(str(directory), "--no-report")
    assert code == 0 and "report:" not in out and not (directory / "report.md").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_report(str(directory), "--out", str(blocker))
    assert code == 2 and err.startswith("error: cannot write the report:") and len(err.strip().splitlines()) == 1


def test_folder_report_for_the_sweep_matches_the_cli(tmp_path):
    directory = _write(tmp_path / "ex")
    markdown, page, lines = write_folder_report(directory)
    assert (markdown, page) == (directory / "report.md", directory / "report.html")
    assert lines[0] == f"figure: {directory / 'figures' / 'mae_vs_budget.png'}"
    from_sweep = markdown.read_text().split("## Results", 1)[1]
    run_report(str(directory))
    assert markdown.read_text().split("## Results", 1)[1] == from_sweep  # the same report after the header
