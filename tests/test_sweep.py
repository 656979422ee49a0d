"""Sweeps through Ray Tune: planning, the Parquet they write, failures counted, --resume, and
`ray job submit` against a local head on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.config import ConfigError
from orchestrator.sweep import INJECT_FAILURE_ENV, run_sweep
from orchestrator.sweep.plan import plan_sweep

REPO = Path(__file__).resolve().parents[1]
ALAC_DEMO = REPO / "configs/alac/demo.yaml"
TINY = ["dataset.options.n_train=12", "dataset.options.n_test=3", "dataset.options.height=64",
        "dataset.options.width=64", "alac.initial=3", "alac.per_cycle=3", "alac.budget=9"]


def sweep_cli(*args, env=None, timeout=600):
    full_env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", **(env or {}))
    sets = [a for s in TINY for a in ("--set", s)]
    return subprocess.run([sys.executable, "-m", "orchestrator.sweep", *args, *sets], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=REPO)


def test_plan_is_grid_times_seeds_with_paired_seeds():
    plan = plan_sweep(ALAC_DEMO, "smoke", TINY, trials=3)
    assert len(plan.trials) == 6 and plan.name == "alac_demo"
    assert len({t.trial_id for t in plan.trials}) == 6
    by_strategy = {}
    for t in plan.trials:
        by_strategy.setdefault(dict(t.settings)["alac.strategy"], []).append(t.seed)
    assert by_strategy == {"pssw": [0, 1, 2], "random": [0, 1, 2]}
    assert plan.trials[0].load().alac.strategy == "pssw"


def test_grid_points_that_run_the_same_trial_are_planned_once(tmp_path):
    """``rs_baseline`` ignores ``alac.alignment``: of strategy x alignment, its aligned point
    would repeat the unaligned one and is not planned; every other point is."""
    config = tmp_path / "grid.yaml"
    config.write_text(ALAC_DEMO.read_text().replace("alac.strategy: [pssw, random]",
                                                    "alac.strategy: [pssw, rs_baseline, random]\n  alac.alignment: [false, true]"))
    plan = plan_sweep(config, "smoke", TINY, trials=2)
    points = [dict(s) for s in dict.fromkeys(t.settings for t in plan.trials)]
    assert len(plan.trials) == 10 and {"alac.strategy": "rs_baseline", "alac.alignment": True} not in points
    assert {"alac.strategy": "rs_baseline", "alac.alignment": False} in points
    assert {"alac.strategy": "random", "alac.alignment": True} in points


def test_plan_validates_every_trial_before_ray(tmp_path):
    with pytest.raises(ConfigError, match="alac.budget"):
        plan_sweep(ALAC_DEMO, "smoke", TINY + ["alac.budget=500"])
    suite = tmp_path / "suite.yaml"
    suite.write_text("suite: s\nexperiments:\n  - config: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        plan_sweep(suite, "smoke")
    suite.write_text("suite: s\nexperimentz: []\n")
    with pytest.raises(ConfigError, match="unknown suite key"):
        plan_sweep(suite, "smoke")


def test_the_embedded_default_suite_plans():
    plan = plan_sweep(None, "demo")
    assert plan.name == "demo" and "alac_demo" in plan.experiments
    strategies = {dict(t.settings).get("alac.strategy") for t in plan.trials if t.experiment == "alac_demo"}
    assert strategies == {"pssw", "random"}


STATUS = re.compile(r"^alac_demo strategy=(pssw|random) seed ([01]): cycle ([123])/3, (\d+) labeled images / (\d+) points, "
                    r"MAE (\d+\.\d\d), \d+\.\d s$")


def assert_quiet_console(text: str, status_lines: int, max_lines: int) -> list[re.Match]:
    """The default console: one status line per cycle with its MAE, no Tune boxes, no
    tensorboardX notes, few lines."""
    lines = text.splitlines()
    matches = [m for m in map(STATUS.match, lines) if m]
    assert len(matches) == status_lines, text[-3000:]
    assert "Removed the following hyperparameter" not in text and "╭" not in text and "Trial status" not in text
    assert "Checkpoint successfully created" not in text and "Started a local Ray instance" not in text
    assert len(lines) < max_lines, text[-3000:]
    return matches


def test_smoke_sweep_writes_the_results_table(tmp_path, ray_session, capfd):
    plan = plan_sweep(ALAC_DEMO, "smoke", TINY, trials=2)
    written = run_sweep(plan, tmp_path)
    matches = assert_quiet_console(capfd.readouterr().out, status_lines=4 * 3, max_lines=15)
    assert {(m[1], m[2], m[3]) for m in matches} == {(s, seed, c) for s in ("pssw", "random") for seed in "01" for c in "123"}
    assert {int(m[4]) for m in matches} == {3, 6, 9}
    frame = pd.read_parquet(written["alac_demo"])
    assert len(frame) == 4 * 3 and frame["trial_id"].nunique() == 4
    assert set(frame["setting.alac.strategy"]) == {"pssw", "random"}
    assert (frame["status"] == "ok").all() and frame["mae"].notna().all()
    assert not frame.duplicated(["trial_id", "cycle"]).any()
    for column in ("experiment", "method", "dataset", "seed", "cycle", "n_labeled", "labeled_points", "mae",
                   "rmse", "train_seconds", "score_seconds", "select_seconds", "evaluate_seconds", "status",
                   "error", "code_version"):
        assert column in frame, column
    assert json.loads((tmp_path / "alac_demo/experiment.json").read_text())["experiment"] == "alac_demo"
    assert len(list((tmp_path / "alac_demo/examples").glob("*.npz"))) == 4
    from orchestrator.sweep.__main__ import paired_table
    paired = paired_table(frame, plan.experiments["alac_demo"].to_dict()).splitlines()
    strategy_row = next(line for line in paired if "| strategy" in line)  # PSSW vs random on the 2 shared seeds
    cells = [cell.strip() for cell in strategy_row.strip("|").split("|")]
    assert cells[2:4] == ["pssw", "random"] and cells[5] == "2" and cells[-1] == "paired t"


@pytest.mark.slow
def test_failed_trial_is_counted_then_resume_runs_it_once(tmp_path):
    storage = tmp_path / "results"
    victim = plan_sweep(ALAC_DEMO, "smoke", TINY, trials=1).trials[1].trial_id
    inject = {INJECT_FAILURE_ENV: f"{tmp_path / 'failed-once'}:{victim}:2"}
    first = sweep_cli("--config", str(ALAC_DEMO), "--scale", "smoke", "--trials", "1", "--storage", str(storage),
                      "--set", "ray.max_failures=0", env=inject)
    assert first.returncode == 0, first.stderr[-3000:]
    # The console: 5 cycles reported, the failure in one line, then the tables and the report path.
    assert_quiet_console(first.stdout, status_lines=5, max_lines=30)
    assert "alac_demo strategy=random seed 0: FAILED: " in first.stdout and "injected failure after cycle 2" in first.stdout
    frame = pd.read_parquet(storage / "alac_demo/results.parquet")
    failed = frame[frame["status"] == "failed"]
    assert list(failed["trial_id"]) == [victim] and "injected failure after cycle 2" in failed["error"].iloc[0]
    assert sorted(frame[frame["trial_id"] == victim]["cycle"]) == [1, 2, 3]  # 2 ok cycles + the failure row

    second = sweep_cli("--config", str(ALAC_DEMO), "--scale", "smoke", "--trials", "1", "--storage", str(storage),
                       "--set", "ray.max_failures=0", "--resume", env=inject)
    assert second.returncode == 0, second.stderr[-3000:]
    frame = pd.read_parquet(storage / "alac_demo/results.parquet")
    assert (frame["status"] == "ok").all() and frame["trial_id"].nunique() == 2
    assert frame.groupby("trial_id")["cycle"].apply(sorted).tolist() == [[1, 2, 3], [1, 2, 3]]
    assert "alac_demo strategy=random seed 0: resuming after cycle 2" in second.stdout  # from its cycle-2 checkpoint
    assert_quiet_console(second.stdout, status_lines=1, max_lines=30)  # only the victim's cycle 3 ran
    last = second.stdout.strip().splitlines()[-1]  # the report is written without a second command
    assert last.startswith("report:") and last.split()[1] == str(storage / "alac_demo/report.html")
    report = (storage / "alac_demo/report.md").read_text()
    assert "| pssw" in report and "figures/" in report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_job_submit_to_a_local_head(tmp_path):
    """A real head (`ray start --head --block`, dashboard on 127.0.0.1) in its own process group,
    so tearing it down never touches other Ray instances on the machine (no `ray stop`)."""
    import signal
    import urllib.request

    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               PATH=f"{venv_bin}:{os.environ.get('PATH', '')}")
    env.pop("RAY_ADDRESS", None)
    port, dashboard = _free_port(), _free_port()
    # Every fixed default port moved to a free one: the test session's own Ray (ray_session) may
    # already hold e.g. the dashboard agent's 52365, and a second agent could not start.
    agent_ports = [f"--{name}={_free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port", "ray-client-server-port")]
    temp_dir = Path(tempfile.mkdtemp(prefix="rayj", dir="/tmp"))  # short: Ray's socket paths have a length limit
    head = subprocess.Popen([str(venv_bin / "ray"), "start", "--head", "--block", "--num-cpus", "2",
                             "--port", str(port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                             "--temp-dir", str(temp_dir), "--disable-usage-stats", *agent_ports],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/api/version", timeout=2)
                break
            except OSError:
                assert head.poll() is None, "ray start --head exited"
                assert time.time() < deadline, "the dashboard did not come up in 120 s"
                time.sleep(1)
        storage = tmp_path / "results"
        sets = [a for s in TINY for a in ("--set", s)]
        command = [str(venv_bin / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{dashboard}",
                   "--working-dir", str(REPO), "--", "python", "-m", "orchestrator.sweep", "--config",
                   "configs/alac/demo.yaml", "--scale", "smoke", "--trials", "1", "--storage", str(storage), *sets]
        for _attempt in range(12):  # the dashboard answers before its job agent is ready
            submit = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
            if "No available agent to submit job" not in submit.stderr:
                break
            time.sleep(5)
        assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
        assert "succeeded" in (submit.stdout + submit.stderr).lower()
        frame = pd.read_parquet(storage / "alac_demo/results.parquet")
        assert frame["trial_id"].nunique() == 2 and (frame["status"] == "ok").all()
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=30)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_status_line_and_the_live_table_redrawn_in_place(capsys):
    from orchestrator.sweep.console import LiveOutput, setting_columns, status_line

    spec = {"experiment": "alac_demo", "seed": 2, "settings": [("alac.strategy", "pssw")]}
    result = {"cycle": 2, "n_cycles": 3, "stage": "cycle", "n_labeled": 8, "labeled_points": 819, "mae": 49.954,
              "time_this_iter_s": 1.26}
    assert status_line(spec, result) == "alac_demo strategy=pssw seed 2: cycle 2/3, 8 labeled images / 819 points, MAE 49.95, 1.3 s"
    css = {"experiment": "cssccnn_demo", "seed": 0, "settings": [("cssccnn.baseline", "none")]}
    assert status_line(css, {"cycle": 1, "stage": "stage1", "n_labeled": 0, "labeled_points": 0, "mae": float("nan"),
                             "time_this_iter_s": 7.0}).endswith(": cycle 1 (stage1), 0 labeled images / 0 points, MAE -, 7.0 s")
    assert setting_columns(["alac.strategy", "cssccnn.baseline"]) == {"spec/setting/alac.strategy": "strategy",
                                                                    "spec/setting/cssccnn.baseline": "baseline"}
    terminal = LiveOutput(tty=True)
    terminal.table("t1\nt2")
    terminal.line("status", table="t1\nt3")  # the table is erased (2 lines up, clear), the line scrolls, the table comes back
    terminal.finish()
    assert capsys.readouterr().out == "t1\nt2\n\x1b[2F\x1b[Jstatus\nt1\nt3\n\x1b[2F\x1b[J"
    log = LiveOutput(tty=False)
    log.table("t1")
    log.line("status", table="t1")
    log.finish()
    assert capsys.readouterr().out == "status\n"  # in a log: the lines only


def test_live_table_drops_tune_banner_and_location_column():
    from orchestrator.sweep.console import compact_table

    raw = ("== Status ==\nCurrent time: now (running for 00:00:04.28)\nUsing FIFO scheduling algorithm.\n"
           "Result logdir: /tmp/somewhere\nNumber of trials: 2/2 (2 RUNNING)\n"
           "+--------+----------+-----------------+------------+\n"
           "| Trial  | status   | loc             | strategy   |\n"
           "|--------+----------+-----------------+------------|\n"
           "| a-s0   | RUNNING  | 127.0.0.1:10236 | pssw       |\n"
           "+--------+----------+-----------------+------------+\n\n")
    assert compact_table(raw).splitlines() == [
        "Current time: now (running for 00:00:04.28)", "Number of trials: 2/2 (2 RUNNING)",
        "+--------+----------+------------+", "| Trial  | status   | strategy   |",
        "|--------+----------+------------|", "| a-s0   | RUNNING  | pssw       |", "+--------+----------+------------+"]
