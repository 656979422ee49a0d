"""Progress lines: drawn on a terminal when a command line enables them, silent everywhere else."""

from __future__ import annotations

import io

from orchestrator.core import progress
from orchestrator.core.progress import ERASE, Bar, SilentBar


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
