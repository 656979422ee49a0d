"""The trial skeleton both methods use.

A trial is a config, a seed and an output folder. :class:`TrialRunner` owns everything that is
not the method: opening the train (pool) and test splits, validating before any work, loading a
checkpoint written by the same config (and refusing one written by another), running the
method's cycles (AL-AC) or stages (CSS-CCNN) in order from where the checkpoint stopped,
writing the checkpoint and the rows atomically after each, reporting each row (the sweep
forwards it to Tune) and the injected failure the resume tests use.

A method subclasses it and writes only its own logic:

* ``method`` (the config's ``method`` value) and ``validate(config, pool_size)`` (a static
  method, also called by the sweep without building a trial);
* ``fresh_state()`` and ``restore_state(saved)`` -> an object with ``next_cycle``, ``rows``
  and ``state_dict()``;
* ``cycles()`` (the cycle numbers it runs, in order) and ``run_cycle(cycle)`` -> the row's
  method-specific fields;
* optionally ``begin()`` (after the state is known), ``after_cycle(cycle, row)`` (after the
  checkpoint is on disk) and ``describe(row)`` (the log line).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch

from orchestrator.config import ConfigError, ExperimentConfig
from orchestrator.core.files import save_torch_atomic, write_parquet_atomic
from orchestrator.core.results import code_version, rows_frame
from orchestrator.core.samples import open_split

CHECKPOINT = "checkpoint.pt"
ROWS = "rows.parquet"


class InjectedFailure(RuntimeError):
    """Raised on purpose after a checkpoint was written (tests of resume)."""


class TrialRunner:
    """Runs one trial into ``out_dir`` (``checkpoint.pt``, ``rows.parquet``); see the module
    docstring for what a method provides. The constructor validates everything before any work."""

    method: ClassVar[str] = ""

    def __init__(self, config: ExperimentConfig, out_dir: str | Path, log: Callable[[str], None] = print,
                 trial_id: str = "local", cache_dir: str | Path | None = None):
        if config.method != self.method:
            raise ConfigError(f"method must be {self.method!r} for this trial runner, got {config.method!r}")
        self.config, self.out_dir, self.log, self.trial_id = config, Path(out_dir), log, trial_id
        #: Work shared between trials (e.g. a label-free pretraining); beside the trial by default.
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.out_dir.parent / "cache"
        self.pool = open_split(config.dataset, config.dataset.train_split)  # DatasetError early
        self.test = open_split(config.dataset, config.dataset.test_split)
        self.validate(config, len(self.pool))
        self.state = None

    # ----------------------------------------------------------------- what a method writes
    @staticmethod
    def validate(config: ExperimentConfig, pool_size: int) -> None:
        raise NotImplementedError

    def fresh_state(self):
        raise NotImplementedError

    def restore_state(self, saved: dict):
        raise NotImplementedError

    def cycles(self) -> list[int]:
        raise NotImplementedError

    def run_cycle(self, cycle: int) -> dict:
        raise NotImplementedError

    def begin(self) -> None:
        """Called once the state is fresh or restored, before the first cycle runs."""

    def after_cycle(self, cycle: int, row: dict) -> None:
        """Called after a cycle's checkpoint and rows are on disk."""

    def describe(self, row: dict) -> str:
        return f"[{self.trial_id}] cycle {row['cycle']}: MAE {row['mae']:.2f} RMSE {row['rmse']:.2f}"

    # ----------------------------------------------------------------- the skeleton
    def _load_checkpoint(self) -> dict | None:
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.pop("config") != self.config.to_dict():
            raise ConfigError(f"{path} was written by a different config; use another --out or delete it")
        return saved

    def _common_fields(self, cycle: int) -> dict:
        cfg = self.config
        return {"experiment": cfg.experiment, "method": cfg.method, "dataset": cfg.dataset.name,
                "scale": cfg.scale, "trial_id": self.trial_id, "seed": cfg.seed, "cycle": cycle,
                "status": "ok", "error": "", "code_version": code_version()}

    def run(self, fail_after_cycle: int | None = None, on_stage_end: Callable[[dict], None] | None = None):
        """Run (or resume) the trial; returns the rows as a DataFrame.

        ``on_stage_end(row)`` is called after each cycle's checkpoint and rows are on disk;
        ``fail_after_cycle`` raises :class:`InjectedFailure` right after that cycle's."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        saved = self._load_checkpoint()
        if saved is None:
            self.state = self.fresh_state()
        else:
            self.state = self.restore_state(saved)
            self.log(f"[{self.trial_id}] resuming {self.out_dir} at cycle {self.state.next_cycle} "
                     f"of {max(self.cycles())}")
        self.begin()
        for cycle in self.cycles():
            if cycle < self.state.next_cycle:
                continue
            row = {**self._common_fields(cycle), **self.run_cycle(cycle)}
            self.state.rows.append(row)
            self.state.next_cycle = cycle + 1
            save_torch_atomic({"config": self.config.to_dict(), **self.state.state_dict()},
                              self.out_dir / CHECKPOINT)
            write_parquet_atomic(rows_frame(self.state.rows), self.out_dir / ROWS)
            self.log(self.describe(row))
            self.after_cycle(cycle, row)
            if on_stage_end is not None:
                on_stage_end(row)
            if fail_after_cycle == cycle:
                raise InjectedFailure(f"injected failure after cycle {cycle}")
        return rows_frame(self.state.rows)
