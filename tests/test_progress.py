"""Progress lines: drawn on a terminal when a command line enables them, silent everywhere else."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.core import progress
from orchestrator.core.progress import ERASE, Bar, SilentBar

ROOT = Path(__file__).resolve().parents[1]
ALAC_DEMO = ROOT / "configs/alac/demo.yaml"
CSS_DEMO = ROOT / "configs/cssccnn/demo.yaml"
ALAC_SMOKE = ["dataset.options.n_train=14", "dataset.options.n_test=4", "dataset.options.height=64",
              "dataset.options.width=64", "alac.initial=3", "alac.per_cycle=3", "alac.budget=9"]
CSS_SMOKE = ["dataset.options.n_train=12", "dataset.options.n_test=3", "cssccnn.stage1.epochs=2",
             "cssccnn.stage2.epochs=2", "cssccnn.stage1.steps_per_epoch=2", "cssccnn.stage2.steps_per_epoch=2"]


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def last_line(text: str) -> str:
    """What a terminal shows last: the text after the last carriage-return erase."""
    return text.rsplit(ERASE, 1)[-1]


def fake_stderr(monkeypatch) -> FakeTerminal:
    """stderr replaced by a fake terminal, from inside the test body (pytest's own capture sets
    ``sys.stderr`` again when the test's call starts, undoing a fixture's replacement)."""
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def test_bar_draws_label_done_total_rate_and_eta_on_a_terminal():
    stream, clock = FakeTerminal(), Clock()
    with Bar("evaluate", 4, unit="img", stream=stream, clock=clock) as line:
        assert last_line(stream.getvalue()) == "evaluate 0/4 0% -- img/s ETA --:--"
        clock.now += 1.0
        line.advance()
        clock.now += 1.0
        line.advance()
        assert last_line(stream.getvalue()) == "evaluate 2/4 50% 1.00 img/s ETA 0:02"
        clock.now += 8.0
        line.advance(note="MAE 3.25")
        assert last_line(stream.getvalue()) == "evaluate 3/4 75% 3.3 s/img ETA 0:03 MAE 3.25"
    assert stream.getvalue().endswith(ERASE)  # a finished bar erases itself: the command's own lines stay


def test_bar_redraws_at_most_every_interval_but_always_on_the_last_item():
    stream, clock = FakeTerminal(), Clock()
    line = Bar("score test", 3, stream=stream, clock=clock, min_interval=0.5)
    drawn = stream.getvalue()
    line.advance()  # at once after the first draw: not redrawn
    assert stream.getvalue() == drawn
    line.advance(), line.advance()
    assert last_line(stream.getvalue()).startswith("score test 3/3 100%")
    line.close()


def test_skipped_work_counts_as_done_but_not_in_the_rate():
    stream, clock = FakeTerminal(), Clock()
    with Bar("rotation epochs", 10, unit="epoch", stream=stream, clock=clock, done=5) as line:
        assert last_line(stream.getvalue()) == "rotation epochs 5/10 50% -- epoch/s ETA --:--"
        line.skip(1)  # one more done by an earlier run (e.g. a resumed checkpoint)
        clock.now += 4.0
        line.advance(2)
        assert last_line(stream.getvalue()) == "rotation epochs 8/10 80% 2.0 s/epoch ETA 0:04"


def test_nested_bars_share_one_line_and_echo_prints_above_it():
    stream, clock = FakeTerminal(), Clock()
    with Bar("trial", 3, stream=stream, clock=clock) as outer:
        outer.advance()
        with Bar("score train", 5, stream=stream, clock=clock) as inner:
            assert last_line(stream.getvalue()).startswith("trial 1/3 | score train 0/5")
            progress.echo("[local] a log line", stream=stream)  # erase, the line, the bar again below it
            assert stream.getvalue().endswith(f"{ERASE}[local] a log line\n{ERASE}trial 1/3 | score train 0/5 0% -- it/s ETA --:--")
            inner.advance(5)
        assert last_line(stream.getvalue()).startswith("trial 1/3 33%")  # the outer bar is back
    assert stream.getvalue().endswith(ERASE)


def test_the_line_never_wraps():
    stream = FakeTerminal()
    with Bar("x" * 200, 1, stream=stream, clock=Clock(), width=40):
        assert len(last_line(stream.getvalue())) == 39


def test_off_a_terminal_nothing_is_printed():
    stream = io.StringIO()  # a log file, a pipe, CI
    with progress.terminal_progress(True), progress.bar("evaluate", 100, stream=stream) as line:
        assert isinstance(line, SilentBar)
        for _ in range(100):
            line.advance()
        progress.echo("only this", stream=stream)
    assert stream.getvalue() == "only this\n"


def test_library_code_draws_nothing_unless_a_command_line_enabled_it():
    stream = FakeTerminal()
    assert isinstance(progress.bar("score test", 3, stream=stream), SilentBar)  # the default, e.g. in a Ray worker
    with progress.terminal_progress(False):
        assert isinstance(progress.bar("score test", 3, stream=stream), SilentBar)
    with progress.terminal_progress(True):
        with progress.bar("score test", 3, stream=stream) as line:
            assert isinstance(line, Bar)
    assert isinstance(progress.bar("score test", 3, stream=stream), SilentBar)  # off again after the block
    assert stream.getvalue() == "\r\x1b[Kscore test 0/3 0% -- it/s ETA --:--" + ERASE


def test_format_duration():
    assert [progress.format_duration(s) for s in (0, 7.4, 750, 3723)] == ["0:00", "0:07", "12:30", "1:02:03"]


class FakeTrial:
    """A trial runner's surface that run_with_progress uses; cycle 1 was done by an earlier run."""

    def __init__(self, clock: Clock):
        from orchestrator.config import load_config

        self.config, self.clock = load_config(ALAC_DEMO, "smoke", ALAC_SMOKE), clock

    def cycles(self):
        return [1, 2, 3]

    def run(self, fail_after_cycle=None, on_stage_end=None):
        for cycle in (2, 3):
            self.clock.now += 5.0
            on_stage_end({"cycle": cycle, "mae": 10.0 * cycle})
        return "rows"


def test_trial_progress_counts_cycles_with_resumed_ones_done(monkeypatch):
    terminal = fake_stderr(monkeypatch)
    from orchestrator.trial import run_with_progress

    clock = Clock()
    monkeypatch.setattr(progress, "CLOCK", clock)
    with progress.terminal_progress(True):
        assert run_with_progress(FakeTrial(clock)) == "rows"
    seen = terminal.getvalue().split(ERASE)
    assert "alac_demo seed 0 cycles 2/3 67% 5.0 s/cycle ETA 0:05 MAE 20.00" in seen
    assert "alac_demo seed 0 cycles 3/3 100% 5.0 s/cycle ETA 0:00 MAE 30.00" in seen


def small_scorer_kwargs(split: str) -> dict:
    from models import CSRNet
    from orchestrator.config import load_config
    from orchestrator.core.tensors import to_bytes

    cfg = load_config(ALAC_DEMO, "smoke", ALAC_SMOKE)
    state = to_bytes(CSRNet(width=cfg.model.width).state_dict())
    return dict(dataset=cfg.dataset, split=split, width=cfg.model.width, model_state=state, levels=cfg.alac.levels)


def test_in_process_pool_scoring_draws_a_line_only_when_enabled(monkeypatch):
    terminal = fake_stderr(monkeypatch)
    from orchestrator.alac.scoring import score_ids
    from orchestrator.config import RayConfig
    from orchestrator.core.samples import open_split

    kwargs = small_scorer_kwargs("test")
    ids = open_split(kwargs["dataset"], "test").ids
    local = RayConfig(score_actors=0, score_batch_size=2)
    quiet = score_ids(kwargs, ids, local)
    assert terminal.getvalue() == ""
    with progress.terminal_progress(True):
        shown = score_ids(kwargs, ids, local)
    assert f"score test {len(ids)}/{len(ids)} 100%" in terminal.getvalue()
    assert list(shown["count"]) == list(quiet["count"])  # the line changes nothing scored


def test_evaluate_items_draws_only_when_the_command_line_asks(monkeypatch):
    terminal = fake_stderr(monkeypatch)
    from models import CSRNet
    from orchestrator.core.samples import open_split
    from orchestrator.evaluate import evaluate_items

    kwargs = small_scorer_kwargs("test")
    items = list(open_split(kwargs["dataset"], "test"))[:2]
    model = CSRNet(width=kwargs["width"])
    evaluate_items(model, items)
    assert terminal.getvalue() == ""  # library default: off
    evaluate_items(model, items, show_progress=True)
    assert "evaluate 2/2 100%" in terminal.getvalue()


def test_cssccnn_trial_on_a_terminal_shows_stages_and_epochs(tmp_path, monkeypatch):
    terminal = fake_stderr(monkeypatch)
    from orchestrator.trial import main

    argv = ["--config", str(CSS_DEMO), "--scale", "smoke", "--out", str(tmp_path / "css")]
    assert main(argv + [a for s in CSS_SMOKE for a in ("--set", s)]) == 0
    shown = terminal.getvalue()
    assert "cssccnn_demo seed 0 stages 0/2" in shown
    assert "cssccnn_demo seed 0 stages 0/2 | rotation epochs 2/2 100%" in shown
    assert "cssccnn_demo seed 0 stages 1/2 | sinkhorn epochs 2/2 100%" in shown
    assert "[local] cycle 1 stage1" in shown  # the log lines still print, above the progress line


def test_a_resumed_stage_counts_its_checkpointed_epochs_as_done(tmp_path, monkeypatch):
    from orchestrator.config import load_config
    from orchestrator.core.skeleton import InjectedFailure
    from orchestrator.cssccnn.trial import CSSCCNNTrial
    from orchestrator.trial import main

    out = tmp_path / "css"
    with pytest.raises(InjectedFailure):  # killed after stage 1's first epoch, silently (no command line)
        CSSCCNNTrial(load_config(CSS_DEMO, "smoke", CSS_SMOKE), out, log=lambda _: None).run(fail_after_epoch=(1, 1))
    terminal = fake_stderr(monkeypatch)
    assert main(["--config", str(CSS_DEMO), "--scale", "smoke", "--out", str(out)]
                + [a for s in CSS_SMOKE for a in ("--set", s)]) == 0
    drawn = terminal.getvalue().split(ERASE)
    assert "cssccnn_demo seed 0 stages 0/2 | rotation epochs 1/2 50% -- epoch/s ETA --:--" in drawn
    assert "cssccnn_demo seed 0 stages 0/2 | rotation epochs 0/2 0% -- epoch/s ETA --:--" not in drawn


def test_trial_cli_in_a_log_prints_no_progress(tmp_path):
    cmd = [sys.executable, "-m", "orchestrator.trial", "--config", str(ALAC_DEMO), "--scale", "smoke",
           "--out", str(tmp_path / "cli")]
    done = subprocess.run(cmd + [a for s in ALAC_SMOKE for a in ("--set", s)], capture_output=True, text=True,
                          timeout=300)  # stderr is a pipe, not a terminal
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr and "ETA" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert sum(line.startswith("[local] cycle ") for line in lines) == 3  # the log lines, one per cycle, as before
