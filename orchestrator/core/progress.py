"""Progress bars for long in-process loops, opt-in from the command lines, quiet everywhere else.

A command line that runs work in its own process (``python -m orchestrator.trial``,
``python -m orchestrator.evaluate``) wraps that work in :func:`terminal_progress` (``enable``
when its stderr is a terminal, :func:`stderr_is_terminal`); inside it, :func:`bar` returns a
:class:`Bar` that keeps one self-overwriting stderr line: ``label done/total pct rate ETA``.
Everywhere else :func:`bar` returns a :class:`SilentBar` that prints nothing:

* library code never enables it: the switch is a ``ContextVar`` that only
  :func:`terminal_progress` sets, so a Ray Tune trial, a Ray Train worker or a Ray Data actor
  (other processes, which start with the default, off) never draws; the sweep's console
  (``orchestrator/sweep/console.py``) keeps the terminal to itself;
* off a terminal (a log, CI, a pipe) nothing is printed per item, nor a summary line: every
  command line already ends with its own summary (the trial's per-cycle lines and final row,
  evaluate's ``MAE .. RMSE .. N ..``), so a log reads the same with or without progress.

Bars nest: while an inner bar (scoring the pool) runs inside an outer one (the trial's cycles),
the line shows the outer bars as ``label done/total |`` before the inner one in full; a closed bar
erases itself and the outer one is drawn again. :func:`echo` prints a line above the bar.
"""

from __future__ import annotations

import contextlib
import contextvars
import shutil
import sys
import time
from collections.abc import Callable

__all__ = ["Bar", "SilentBar", "bar", "echo", "format_duration", "stderr_is_terminal", "terminal_progress"]

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("orchestrator_progress", default=False)
_ACTIVE: list[Bar] = []  # the bars drawing now, outermost first
ERASE = "\r\x1b[K"  # to the line's start, clear to its end
CLOCK = time.monotonic  # what a bar reads when given no clock (tests replace it)


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal: what a command line passes to :func:`terminal_progress`."""
    return _is_tty(sys.stderr)


def _is_tty(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


@contextlib.contextmanager
def terminal_progress(enable: bool):
    """Within this block (and only in this process), :func:`bar` draws on a terminal when ``enable``."""
    token = _ENABLED.set(bool(enable))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Bar:
    """One progress line on ``stream`` (a terminal): ``label done/total pct rate ETA [note]``.

    The rate counts only what this process did (``done`` at the start and :meth:`skip` mark
    work already done, e.g. by a resumed trial's checkpoint); ``clock`` (seconds) is injectable for tests; the line is
    redrawn at most every ``min_interval`` seconds (always on the last item) and cut to the
    terminal's width so it never wraps."""

    def __init__(self, label: str, total: int, unit: str = "it", stream=None, done: int = 0,
                 clock: Callable[[], float] | None = None, min_interval: float = 0.1, width: int | None = None):
        self.label, self.total, self.unit = label, int(total), unit
        self.stream = stream if stream is not None else sys.stderr
        self.clock, self.min_interval = clock if clock is not None else CLOCK, min_interval
        self.width = width or shutil.get_terminal_size((100, 24)).columns
        self.done, self.skipped, self.note = done, done, ""
        self.started = self.clock()
        self._drawn_at: float | None = None
        _ACTIVE.append(self)
        self._draw()

    # ------------------------------------------------------------------ counting
    def advance(self, n: int = 1, note: str | None = None) -> None:
        """``n`` more items done (``note``: shown after the ETA, e.g. the last MAE)."""
        self.done += n
        if note is not None:
            self.note = note
        if self.done >= self.total or self._drawn_at is None or self.clock() - self._drawn_at >= self.min_interval:
            self._draw()

    def skip(self, n: int) -> None:
        """``n`` items were done before this process started: counted, not in the rate."""
        self.done += n
        self.skipped += n

    def close(self) -> None:
        """Erase the line; the bar outside this one, if any, is drawn again."""
        if self not in _ACTIVE:
            return
        _ACTIVE.remove(self)
        self.stream.write(ERASE)
        if _ACTIVE:
            _ACTIVE[-1]._draw()
        self.stream.flush()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ drawing
    def rate(self) -> float | None:
        """Items per second done by this process, ``None`` before the first one."""
        elapsed, counted = self.clock() - self.started, self.done - self.skipped
        return counted / elapsed if counted > 0 and elapsed > 0 else None

    def summary(self) -> str:
        """``label done/total``: how an outer bar shows while an inner one runs."""
        return f"{self.label} {self.done}/{self.total}"

    def render(self) -> str:
        """``label done/total pct rate ETA [note]``."""
        rate, pct = self.rate(), 100.0 * self.done / self.total if self.total else 100.0
        if rate is None:
            speed, eta = f"-- {self.unit}/s", "--:--"
        else:
            speed = f"{rate:.2f} {self.unit}/s" if rate >= 1 else f"{1 / rate:.1f} s/{self.unit}"
            eta = format_duration(max(self.total - self.done, 0) / rate)
        return " ".join(p for p in (self.summary(), f"{pct:.0f}%", speed, f"ETA {eta}", self.note) if p)

    def line(self) -> str:
        """The whole line: the outer bars' summaries, then this bar in full, cut to the width."""
        outer = [b.summary() for b in _ACTIVE if b is not self]
        return " | ".join([*outer, self.render()])[: max(self.width - 1, 10)]

    def _draw(self) -> None:
        if _ACTIVE and _ACTIVE[-1] is not self:
            return  # an inner bar holds the line
        self.stream.write(ERASE + self.line())
        self.stream.flush()
        self._drawn_at = self.clock()


class SilentBar:
    """A bar that prints nothing (off a terminal, or where no command line enabled progress)."""

    def __init__(self, total: int = 0, done: int = 0):
        self.total, self.done = total, done

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n

    def skip(self, n: int) -> None:
        self.done += n

    def close(self) -> None:
        pass

    def __enter__(self) -> SilentBar:
        return self

    def __exit__(self, *exc) -> None:
        pass


def bar(label: str, total: int, unit: str = "it", stream=None, done: int = 0, **options) -> Bar | SilentBar:
    """A :class:`Bar` when a command line enabled progress here and ``stream`` (default stderr)
    is a terminal, else a :class:`SilentBar`. ``done``: items finished before (not in the rate);
    ``options``: :class:`Bar`'s ``clock`` etc."""
    stream = stream if stream is not None else sys.stderr
    if _ENABLED.get() and _is_tty(stream):
        return Bar(label, total, unit, stream, done, **options)
    return SilentBar(total, done)


def echo(text: str, stream=None) -> None:
    """Print ``text`` as a line of its own (default stderr), above the progress line if one is drawn."""
    stream = stream if stream is not None else sys.stderr
    if _ACTIVE:
        stream.write(ERASE)
    stream.write(text + "\n")
    if _ACTIVE:
        _ACTIVE[-1]._draw()
    stream.flush()
