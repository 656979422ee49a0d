"""The sweep's Ray Tune wiring: one Tune trial = one seed of one grid point.

Trial side: :func:`run_tune_trial` runs (or resumes) the method's trial runner in a private
folder and reports each cycle/stage's metrics with a checkpoint of the trial's state files, so
Tune's ``FailureConfig`` retries from there and ``Tuner.restore`` continues a sweep. Driver
side: :func:`build_tuner`, :func:`collect_results` (one Parquet per experiment; the same table
is also rewritten while the sweep runs, by :mod:`orchestrator.sweep.live_rows`) and
:func:`run_sweep`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.config import ConfigError
from orchestrator.core.files import write_atomic, write_json_atomic, write_parquet_atomic
from orchestrator.core.results import code_version, rows_frame
from orchestrator.sweep.plan import SweepPlan, TrialSpec

STATE_FILES = ("checkpoint.pt", "rows.parquet", "examples.npz")
#: Under the sweep's storage: work shared between its trials (label-free pretrainings).
CACHE = "cache"
SETTING_PREFIX = "setting."


# ---------------------------------------------------------------------------------- trial side
def _numeric_metrics(row: dict) -> dict:
    keep = {}
    for key, value in row.items():
        if isinstance(value, (bool, np.bool_)):
            keep[key] = bool(value)
        elif isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
            keep[key] = float(value) if isinstance(value, (float, np.floating)) else int(value)
    return keep


def _reported_metrics(row: dict) -> dict:
    """What a trial reports to Tune after a cycle/stage: its numbers and its stage's name (for
    the driver's status line)."""
    metrics = _numeric_metrics(row)
    if isinstance(row.get("stage"), str):
        metrics["stage"] = row["stage"]
    return metrics


#: Test hook: "MARKER_FILE:TRIAL_ID:CYCLE" makes that trial fail once after that cycle (the
#: marker file records that it did), to test retries and --resume of a real sweep.
INJECT_FAILURE_ENV = "ORCHESTRATOR_INJECT_FAILURE"


def _injected_failure(spec: TrialSpec) -> int | None:
    value = os.environ.get(INJECT_FAILURE_ENV)
    if not value:
        return None
    marker, trial_id, cycle = value.rsplit(":", 2)
    if trial_id != spec.trial_id or Path(marker).exists():
        return None
    Path(marker).write_text(f"{trial_id} failed after cycle {cycle}\n")
    return int(cycle)


def run_tune_trial(param: dict) -> None:
    """The Tune function trainable: run (or resume) one trial, reporting after each cycle/stage."""
    import ray.tune

    from orchestrator.trial import make_trial

    spec = TrialSpec.from_dict(param["spec"])
    config = spec.load()
    work = Path(tempfile.mkdtemp(prefix=f"{spec.trial_id}-"))
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is not None:  # a retry or a --resume: continue from the last reported state
        with checkpoint.as_directory() as directory:
            for name in STATE_FILES:
                if (Path(directory) / name).is_file():
                    shutil.copy2(Path(directory) / name, work / name)

    def report(row: dict) -> None:
        with tempfile.TemporaryDirectory() as staging:
            for name in STATE_FILES:
                if (work / name).is_file():
                    shutil.copy2(work / name, Path(staging) / name)
            ray.tune.report(_reported_metrics(row), checkpoint=ray.tune.Checkpoint.from_directory(staging))

    trial = make_trial(config, work, log=lambda msg: print(msg, flush=True), trial_id=spec.trial_id,
                       cache_dir=param.get("cache_dir"))
    try:
        trial.run(on_stage_end=report, fail_after_cycle=_injected_failure(spec))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def trial_resources(spec_param: dict) -> dict:
    """A trial's own CPU share: tiny when its Ray Train workers hold the CPUs (ENVIRONMENT.md:
    default resources deadlock Tune + Train on small machines)."""
    config = TrialSpec.from_dict(spec_param["spec"]).load()
    cpu = 0.01 if config.ray.train_workers >= 1 else config.ray.trial_cpus
    resources = {"cpu": cpu}
    if config.ray.use_gpu and config.ray.train_workers == 0:
        resources["gpu"] = config.ray.gpus_per_worker
    return resources


# ---------------------------------------------------------------------------------- driver side
def _scalar(value):
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)


def _param_spec(spec: TrialSpec) -> dict:
    """A trial's ``spec`` in Tune's config: :class:`TrialSpec` fields plus ``setting`` (swept key
    -> scalar value), which the live table's columns and TensorBoard's hparams can show."""
    return dict(spec.to_dict(), setting={key: _scalar(value) for key, value in spec.settings})


def trial_name(trial) -> str:
    """Tune's trial name (live table, Tune's logs): our trial id, e.g. ``alac_demo-a98313-s0``."""
    return str(trial.config["spec"]["trial_id"])


def trial_dirname(trial) -> str:
    return f"{trial.config['spec']['trial_id']}_{trial.trial_id}"


def swept_keys(plan: SweepPlan) -> list[str]:
    return list(dict.fromkeys(key for spec in plan.trials for key, _ in spec.settings))


def _run_config(plan: SweepPlan, storage: Path, run_dir: Path, verbose: bool):
    """Quiet by default: the status lines and live table of :mod:`orchestrator.sweep.console`;
    ``verbose``: Tune's own output (plus the status lines). Trials' output goes to their folders."""
    from ray.tune import FailureConfig, RunConfig, SyncConfig

    from orchestrator.sweep.console import console_callbacks
    from orchestrator.sweep.live_rows import LiveResults

    table, status = console_callbacks(swept_keys(plan))
    max_failures = max(b.ray.max_failures for b in plan.experiments.values())
    callbacks = [status, LiveResults(plan, storage)]  # results.parquet rewritten as trials report
    return RunConfig(name=run_dir.name, storage_path=str(storage), failure_config=FailureConfig(max_failures=max_failures),
                     verbose=1, callbacks=callbacks, progress_reporter=None if verbose else table,
                     log_to_file=True, sync_config=SyncConfig(sync_artifacts=True))  # -> <trial folder>/stdout, stderr


def build_tuner(plan: SweepPlan, storage: Path, resume: bool, verbose: bool = False):
    import ray.tune
    from ray.tune import TuneConfig, Tuner

    trainable = ray.tune.with_resources(run_tune_trial, trial_resources)
    run_dir = storage / f"tune_{plan.name}"
    run_config = _run_config(plan, storage, run_dir, verbose)
    if resume:
        if not Tuner.can_restore(str(run_dir)):
            raise ConfigError(f"--resume: no sweep to resume in {run_dir}")
        tuner = Tuner.restore(str(run_dir), trainable=trainable, resume_errored=True, resume_unfinished=True)
        internal = getattr(tuner, "_local_tuner", None)  # this run's console, not the pickled one's
        if internal is not None and hasattr(internal, "_run_config"):
            internal._run_config = dataclasses.replace(internal._run_config, verbose=run_config.verbose,
                                                       callbacks=run_config.callbacks,
                                                       progress_reporter=run_config.progress_reporter)
        return tuner
    return Tuner(
        trainable,
        param_space={"spec": ray.tune.grid_search([_param_spec(s) for s in plan.trials]),
                     "cache_dir": str(storage / CACHE)},
        tune_config=TuneConfig(max_concurrent_trials=plan.max_concurrent_trials, reuse_actors=False,
                               trial_name_creator=trial_name, trial_dirname_creator=trial_dirname),
        run_config=run_config,
    )


def error_text(error: BaseException) -> str:
    """``Type: message`` of a failed trial's own exception, at most 2000 characters. Ray hands
    it over wrapped in a ``RayTaskError`` whose text is the whole remote traceback, which would
    push the message past the cut; the traceback stays in the trial's Tune error file."""
    cause = getattr(error, "cause", None)
    shown = cause if isinstance(cause, BaseException) else error
    return f"{type(shown).__name__}: {shown}"[:2000]


def _trial_rows(result, spec: TrialSpec, examples_dir: Path) -> list[dict]:
    """Rows of one Tune result (from its last checkpoint), plus a failed row when it errored;
    its density examples, if any, are copied to ``examples_dir/<trial_id>.npz``."""
    return checkpoint_rows(result.checkpoint, result.error, spec, examples_dir)


def checkpoint_rows(checkpoint, error: BaseException | str | None, spec: TrialSpec, examples_dir: Path) -> list[dict]:
    """A trial's rows from its checkpoint's ``rows.parquet`` (every cycle/stage so far), plus a
    failed row when ``error`` is set; copies its ``examples.npz`` to ``examples_dir``. Used by
    :func:`collect_results` and, as trials report, by :mod:`orchestrator.sweep.live_rows`."""
    rows = []
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            if (Path(directory) / "rows.parquet").is_file():
                rows = pd.read_parquet(Path(directory) / "rows.parquet").to_dict("records")
            if (Path(directory) / "examples.npz").is_file():
                source = Path(directory) / "examples.npz"
                write_atomic(examples_dir / f"{spec.trial_id}.npz", lambda tmp: shutil.copy2(source, tmp))
    if error is not None:
        last = max((r["cycle"] for r in rows), default=0)
        rows.append({"experiment": spec.experiment, "trial_id": spec.trial_id, "seed": spec.seed,
                     "cycle": last + 1, "stage": "failed", "status": "failed",
                     "error": error_text(error),
                     "mae": np.nan, "rmse": np.nan, "code_version": code_version(),
                     "method": None, "dataset": None, "scale": spec.scale})
    for row in rows:
        row["trial_id"] = spec.trial_id
        for key, value in spec.settings:
            row[SETTING_PREFIX + key] = value
    return rows


def write_experiment(rows: list[dict], base, out: Path) -> Path:
    """``out/results.parquet`` (one row per trial and cycle/stage, the last kept of a repeated
    one, sorted) and ``out/experiment.json`` for experiment config ``base``, both atomically."""
    frame = rows_frame(rows)
    frame[["method", "dataset"]] = frame[["method", "dataset"]].fillna(
        {"method": base.method, "dataset": base.dataset.name})
    frame = frame.drop_duplicates(subset=["trial_id", "cycle"], keep="last").sort_values(["trial_id", "cycle"])
    written = write_parquet_atomic(frame.reset_index(drop=True), out / "results.parquet")
    write_json_atomic(out / "experiment.json", base.to_dict())
    return written


def collect_results(plan: SweepPlan, result_grid, storage: Path) -> dict[str, Path]:
    """Write ``STORAGE/<experiment>/results.parquet`` (+ experiment.json, examples/) per experiment."""
    by_experiment: dict[str, list[dict]] = {name: [] for name in plan.experiments}
    for result in result_grid:
        spec = TrialSpec.from_dict(result.config["spec"])
        by_experiment[spec.experiment] += _trial_rows(result, spec, storage / spec.experiment / "examples")
    return {name: write_experiment(rows, plan.experiments[name], storage / name) for name, rows in by_experiment.items()}


def run_sweep(plan: SweepPlan, storage: Path, resume: bool = False, address: str | None = None,
              verbose: bool = False) -> dict[str, Path]:
    """Run the plan's trials on Tune and write one results table per experiment. ``verbose``:
    Tune's and the trials' own output on the console (default: status lines and a live table)."""
    from orchestrator.core.execution import ensure_ray
    from orchestrator.sweep.console import quiet_tune

    storage = storage.resolve()
    storage.mkdir(parents=True, exist_ok=True)
    ensure_ray(address, quiet=not verbose)
    print(f"sweep {plan.name}: {len(plan.trials)} trials over {len(plan.experiments)} experiment(s), "
          f"at most {plan.max_concurrent_trials} at once; storage {storage}", flush=True)
    _pretrain_ahead(plan, storage / CACHE)
    tuner = build_tuner(plan, storage, resume, verbose=verbose)
    with quiet_tune(verbose):
        grid = tuner.fit()
    return collect_results(plan, grid, storage)


def _pretrain_ahead(plan: SweepPlan, cache_dir: Path) -> None:
    """The label-free pretrainings the trials share, once each, as Ray tasks before Tune starts."""
    from orchestrator.alac.pretrain import pretrain_ahead

    started = time.perf_counter()
    count = pretrain_ahead([spec.load() for spec in plan.trials], cache_dir)
    if count:
        print(f"{count} label-free pretraining(s) ready in {cache_dir} ({time.perf_counter() - started:.0f} s)",
              flush=True)
