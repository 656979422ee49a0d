"""What a sweep prints: one status line per finished cycle or stage, and a compact live table.

By default (:func:`quiet_tune`) the driver prints, through Ray Tune's callback and reporter APIs:

* :class:`StatusLines` (a Tune ``Callback``): one line per reported cycle/stage — experiment,
  swept settings, seed, cycle/stage, labeled images and points, MAE, seconds — plus a line when
  a trial fails, is retried or resumes from its checkpoint.
* :class:`LiveTable` (a ``CLIReporter``): on a terminal, one table redrawn in place (trial,
  status, the swept settings, cycle, labeled, MAE, RMSE), erased when the sweep ends; in a log
  (not a terminal) nothing, the status lines say it all.

Tune's per-trial config/result boxes, its INFO logging (tensorboardX's "Removed the following
hyperparameter values" notes, "Wrote the latest version ...") and the trials' own output (kept in
each Tune trial folder's ``stdout``/``stderr``, see ``RunConfig(log_to_file=True)``) stay out of
the console. ``--verbose`` keeps Tune's own output instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from pathlib import Path

from ray.tune import Callback, CLIReporter

#: Loggers whose INFO lines a quiet sweep hides (their warnings and errors still print).
QUIET_LOGGERS = ("ray.tune", "ray.train", "ray.data", "ray.air")
#: Reported metric -> its column in the live table.
METRIC_COLUMNS = {"cycle": "cycle", "n_labeled": "labeled", "labeled_points": "points", "mae": "MAE", "rmse": "RMSE"}
SETTING_CONFIG_KEY = "setting"  # spec["setting"] = {dotted key: value}, scalars only (Tune's columns)


def short_key(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def _number(value, fmt: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return format(value, fmt)
    return "-"


def trial_label(spec: dict) -> str:
    """``alac_demo strategy=pssw seed 0``: experiment, swept settings, seed."""
    settings = " ".join(f"{short_key(k)}={v}" for k, v in spec.get("settings") or ())
    return " ".join(part for part in (spec["experiment"], settings, f"seed {spec['seed']}") if part)


def status_line(spec: dict, result: dict) -> str:
    """One finished cycle/stage of one trial, from Tune's result dict."""
    cycle, stage = result.get("cycle"), result.get("stage")
    where = f"cycle {cycle}" + (f"/{result['n_cycles']}" if result.get("n_cycles") else "")
    if stage and stage != "cycle":
        where += f" ({stage})"
    return (f"{trial_label(spec)}: {where}, {_number(result.get('n_labeled'), 'd')} labeled images / "
            f"{_number(result.get('labeled_points'), 'd')} points, MAE {_number(result.get('mae'), '.2f')}, "
            f"{_number(result.get('time_this_iter_s'), '.1f')} s")


def _error_summary(trial) -> str:
    """The exception's last line, and where Tune keeps its traceback (the trial's folder)."""
    path = getattr(trial, "error_file", None)
    try:
        lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()] if path else []
    except OSError:
        lines = []
    if not lines:
        return "see Tune's error log above"
    name = getattr(getattr(trial, "run_metadata", None), "error_filename", None)
    stored = Path(trial.path, name) if getattr(trial, "path", None) and name else path
    return f"{lines[-1][:300]} (traceback: {stored})"


class LiveOutput:
    """The console, shared by the status lines and the live table: lines scroll, the table (on a
    terminal only) is redrawn below them. Holds no stream (Tune pickles its run config)."""

    def __init__(self, tty: bool | None = None):
        self._tty = tty
        self._drawn = 0  # lines of the table now on the screen

    @property
    def stream(self):
        return sys.stdout

    def is_tty(self) -> bool:
        return self._tty if self._tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())

    def _erase(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")  # to the table's first line, clear below
            self._drawn = 0

    def line(self, text: str, table: str | None = None) -> None:
        self._erase()
        self.stream.write(text + "\n")
        if table:
            self.table(table)
        self.stream.flush()

    def table(self, text: str) -> None:
        if not self.is_tty():
            return
        self._erase()
        self.stream.write(text + "\n")
        self._drawn = text.count("\n") + 1
        self.stream.flush()

    def finish(self) -> None:
        self._erase()
        self.stream.flush()


#: Lines of ``CLIReporter``'s status block that the live table leaves out.
DROPPED_LINES = ("== Status ==", "Using FIFO", "Result logdir:")


def compact_table(text: str) -> str:
    """``CLIReporter``'s progress text without its banner, scheduler and log-folder lines and
    without the trials table's ``loc`` column (node IP and pid)."""
    lines = [line for line in text.strip("\n").splitlines() if not line.startswith(DROPPED_LINES)]
    start = next((i for i, line in enumerate(lines) if line.startswith("+")), None)
    if start is None or start + 1 >= len(lines):
        return "\n".join(lines)
    border, cuts = lines[start], [i for i, ch in enumerate(lines[start]) if ch == "+"]
    if len(cuts) < 4 or lines[start + 1][cuts[2]:cuts[3]].strip(" |") != "loc":
        return "\n".join(lines)
    end = start
    while end < len(lines) and lines[end][:1] in "+|" and len(lines[end]) == len(border):
        lines[end] = lines[end][:cuts[2]] + lines[end][cuts[3]:]
        end += 1
    return "\n".join(lines)


class LiveTable(CLIReporter):
    """Tune's ``CLIReporter`` drawn through :class:`LiveOutput` (in place, terminals only)."""

    def __init__(self, output: LiveOutput, parameter_columns: dict[str, str]):
        super().__init__(parameter_columns=parameter_columns, metric_columns=dict(METRIC_COLUMNS),
                         max_report_frequency=2, max_progress_rows=12, max_error_rows=3, max_column_length=24)
        self.output = output
        self.last = ""

    def should_report(self, trials, done: bool = False) -> bool:
        return done or (self.output.is_tty() and super().should_report(trials, done))

    def report(self, trials, done: bool, *sys_info: str) -> None:
        if done:
            self.last = ""
            self.output.finish()
            return
        self.last = compact_table(self._progress_str(trials, done, *sys_info))
        self.output.table(self.last)


class StatusLines(Callback):
    """The per-cycle/stage status lines (and failures, retries, resumptions) of a sweep."""

    def __init__(self, output: LiveOutput, table: LiveTable | None = None):
        self.output = output
        self.table = table

    def _line(self, text: str) -> None:
        self.output.line(text, self.table.last if self.table else None)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._line(status_line(trial.config["spec"], result))

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.checkpoint is None:  # a fresh start; else a retry or a --resume continues
            return
        cycle = (trial.last_result or {}).get("cycle")
        self._line(f"{trial_label(trial.config['spec'])}: resuming" + (f" after cycle {cycle}" if cycle else ""))

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._line(f"{trial_label(trial.config['spec'])}: failed, retrying from its last checkpoint "
                   f"(failure {trial.num_failures}): {_error_summary(trial)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(f"{trial_label(trial.config['spec'])}: FAILED: {_error_summary(trial)}")


def setting_columns(setting_keys: list[str]) -> dict[str, str]:
    """Live-table parameter columns: ``spec/setting/<dotted key>`` -> its last part."""
    return {f"spec/{SETTING_CONFIG_KEY}/{key}": short_key(key) for key in setting_keys}


def console_callbacks(setting_keys: list[str], tty: bool | None = None) -> tuple[LiveTable, StatusLines]:
    """The live table (a progress reporter) and the status-line callback, sharing one console."""
    output = LiveOutput(tty)
    table = LiveTable(output, setting_columns(setting_keys))
    return table, StatusLines(output, table)


@contextlib.contextmanager
def quiet_tune(verbose: bool):
    """While a sweep runs: Tune's classic reporter engine (``RAY_AIR_NEW_OUTPUT=0``, so our
    ``progress_reporter`` is used) and only warnings from Ray's libraries. ``verbose``: untouched."""
    if verbose:
        yield
        return
    saved_env = os.environ.get("RAY_AIR_NEW_OUTPUT")
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    saved_levels = [lg.level for lg in loggers]
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved_levels):
            lg.setLevel(level)
        if saved_env is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = saved_env


__all__ = ["LiveOutput", "LiveTable", "StatusLines", "console_callbacks", "quiet_tune", "setting_columns", "status_line",
           "trial_label"]
