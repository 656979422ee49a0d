"""Results written as the sweep goes: a driver whose sweep is killed keeps every reported row.

:class:`LiveResults` is a Ray Tune ``Callback`` in the driver. Whenever a trial's reported
cycle/stage checkpoint is registered (``on_trial_save``; Tune calls ``on_trial_result`` before
the checkpoint that carries the row), a trial completes or fails, it rewrites that trial's
experiment's ``STORAGE/<experiment>/results.parquet`` atomically with every row known so far,
built by the same code as the final :func:`~orchestrator.sweep.tune.collect_results`
(:func:`~orchestrator.sweep.tune.checkpoint_rows`, :func:`~orchestrator.sweep.tune.write_experiment`):
a trial's rows come from its latest checkpoint (all its cycles so far, so a retried trial that
reports a cycle again replaces it), one row per (trial, cycle). On ``--resume`` the trials
finished before are read from their checkpoints too, so the file never loses their rows.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune import Callback

from orchestrator.sweep.plan import SweepPlan, TrialSpec
from orchestrator.sweep.tune import checkpoint_rows, write_experiment


def _checkpoint_key(trial) -> str | None:
    checkpoint = trial.checkpoint
    return None if checkpoint is None else str(checkpoint.path)


def trial_error(trial):
    """The failed trial's exception as the final results see it (the pickled one, else the text
    of Tune's error file); Tune writes both on the driver before ``on_trial_error``."""
    from ray import cloudpickle

    pickled = getattr(trial, "pickled_error_file", None)
    if pickled and Path(pickled).is_file():
        with open(pickled, "rb") as f:
            return cloudpickle.load(f)
    return trial.get_pickled_error() or trial.get_error() or "unknown error"


class LiveResults(Callback):
    """Rewrite an experiment's results table each time one of its trials reports or ends.

    Holds the experiments' configs and, per Tune trial, the checkpoint its rows were read from,
    its error (when it failed for good) and those rows."""

    def __init__(self, plan: SweepPlan, storage: Path):
        self.storage = Path(storage)
        self.experiments = dict(plan.experiments)
        self._known: dict[str, tuple[str | None, object]] = {}  # Tune trial id -> (checkpoint, error)
        self._rows: dict[str, tuple[str, list[dict]]] = {}  # Tune trial id -> (experiment, rows)

    def _refresh(self, trial, error=None) -> str | None:
        """Re-read ``trial``'s rows when its checkpoint or error changed; its experiment then."""
        state = (_checkpoint_key(trial), error)
        if self._known.get(trial.trial_id) == state:
            return None
        spec = TrialSpec.from_dict(trial.config["spec"])
        rows = checkpoint_rows(trial.checkpoint, error, spec, self.storage / spec.experiment / "examples")
        self._known[trial.trial_id] = state
        self._rows[trial.trial_id] = (spec.experiment, rows)
        return spec.experiment

    def _update(self, trials, trial=None, error=None) -> None:
        """Refresh every trial (after a ``--resume`` the finished ones too), ``trial`` with its
        error, then rewrite each experiment whose rows changed."""
        changed = {self._refresh(t) for t in trials if t is not trial and t.trial_id not in self._known}
        if trial is not None:
            changed.add(self._refresh(trial, error))
        for name in sorted(n for n in changed if n is not None):
            rows = [row for experiment, trial_rows in self._rows.values() if experiment == name for row in trial_rows]
            if rows:
                write_experiment(rows, self.experiments[name], self.storage / name)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._update(trials, trial)

    def on_trial_save(self, iteration, trials, trial, **info):
        self._update(trials, trial)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._update(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._update(trials, trial, error=trial_error(trial))


__all__ = ["LiveResults", "trial_error"]
