"""``python -m orchestrator.sweep``: the product's main job — repeated trials as a Ray Tune sweep.

    python -m orchestrator.sweep                                   # embedded default: configs/demo.yaml
    python -m orchestrator.sweep --config configs/alac/table1_pssw_vs_rs.yaml --scale paper
    ray job submit --working-dir . -- python -m orchestrator.sweep --config ... --storage /mnt/shared/results

One Tune trial = one seed of one grid point, running the method's trial runner (whose training
may itself be a Ray Train job and whose pool scoring a Ray Data job). After every cycle/stage a
trial reports its metrics and a checkpoint (its whole state), so ``--resume`` continues an
interrupted sweep without re-running finished trials, and Tune's ``FailureConfig`` retries a
failed trial from its last checkpoint. Results: ``STORAGE/<experiment>/results.parquet`` (one
row per trial and cycle/stage, failed trials included with their error), ``experiment.json``
and ``examples/``; then the summary table is printed.

Locally Ray starts bound to 127.0.0.1; ``--address`` (or running under ``ray job submit``) joins
a cluster instead. On a multi-node cluster ``--storage`` must be shared storage (NFS).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.config import SCALES, ConfigError
from orchestrator.data import DatasetError
from orchestrator.results import code_version, rows_frame, write_parquet_atomic
from orchestrator.sweep_plan import SweepPlan, TrialSpec, plan_sweep

STATE_FILES = ("checkpoint.pt", "rows.parquet", "examples.npz")
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
            ray.tune.report(_numeric_metrics(row), checkpoint=ray.tune.Checkpoint.from_directory(staging))

    trial = make_trial(config, work, log=lambda msg: print(msg, flush=True), trial_id=spec.trial_id)
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
def build_tuner(plan: SweepPlan, storage: Path, resume: bool):
    import ray.tune
    from ray.tune import FailureConfig, RunConfig, TuneConfig, Tuner

    trainable = ray.tune.with_resources(run_tune_trial, trial_resources)
    run_dir = storage / f"tune_{plan.name}"
    if resume:
        if not Tuner.can_restore(str(run_dir)):
            raise ConfigError(f"--resume: no sweep to resume in {run_dir}")
        return Tuner.restore(str(run_dir), trainable=trainable, resume_errored=True, resume_unfinished=True)
    max_failures = max(b.ray.max_failures for b in plan.experiments.values())
    return Tuner(
        trainable,
        param_space={"spec": ray.tune.grid_search([s.to_dict() for s in plan.trials])},
        tune_config=TuneConfig(max_concurrent_trials=plan.max_concurrent_trials, reuse_actors=False),
        run_config=RunConfig(name=run_dir.name, storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=max_failures), verbose=1),
    )


def _trial_rows(result, spec: TrialSpec, examples_dir: Path) -> list[dict]:
    """Rows of one Tune result (from its last checkpoint), plus a failed row when it errored;
    its density examples, if any, are copied to ``examples_dir/<trial_id>.npz``."""
    rows = []
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as directory:
            if (Path(directory) / "rows.parquet").is_file():
                rows = pd.read_parquet(Path(directory) / "rows.parquet").to_dict("records")
            if (Path(directory) / "examples.npz").is_file():
                examples_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(directory) / "examples.npz", examples_dir / f"{spec.trial_id}.npz")
    if result.error is not None:
        last = max((r["cycle"] for r in rows), default=0)
        rows.append({"experiment": spec.experiment, "trial_id": spec.trial_id, "seed": spec.seed,
                     "cycle": last + 1, "stage": "failed", "status": "failed",
                     "error": f"{type(result.error).__name__}: {result.error}"[:2000],
                     "mae": np.nan, "rmse": np.nan, "code_version": code_version(),
                     "method": None, "dataset": None, "scale": spec.scale})
    for row in rows:
        row["trial_id"] = spec.trial_id
        for key, value in spec.settings:
            row[SETTING_PREFIX + key] = value
    return rows


def collect_results(plan: SweepPlan, result_grid, storage: Path) -> dict[str, Path]:
    """Write ``STORAGE/<experiment>/results.parquet`` (+ experiment.json, examples/) per experiment."""
    by_experiment: dict[str, list[dict]] = {name: [] for name in plan.experiments}
    for result in result_grid:
        spec = TrialSpec.from_dict(result.config["spec"])
        by_experiment[spec.experiment] += _trial_rows(result, spec, storage / spec.experiment / "examples")
    written = {}
    for name, rows in by_experiment.items():
        out = storage / name
        base = plan.experiments[name]
        frame = rows_frame(rows)
        frame[["method", "dataset"]] = frame[["method", "dataset"]].fillna(
            {"method": base.method, "dataset": base.dataset.name})
        frame = frame.drop_duplicates(subset=["trial_id", "cycle"], keep="last").sort_values(["trial_id", "cycle"])
        written[name] = write_parquet_atomic(frame.reset_index(drop=True), out / "results.parquet")
        tmp = out / f".experiment.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(base.to_dict(), indent=1, default=str))
        os.replace(tmp, out / "experiment.json")
    return written


def summary_table(frame: pd.DataFrame, config: dict) -> str:
    """The report's table: mean ± std of MAE/RMSE at each trial's final row, per setting, failed
    trials counted, the paper's numbers beside ours at paper scale."""
    from orchestrator.report import render_table

    return render_table(frame, "markdown", configs={config["experiment"]: config})


def run_sweep(plan: SweepPlan, storage: Path, resume: bool = False, address: str | None = None) -> dict[str, Path]:
    from orchestrator.ray_env import ensure_ray

    storage = storage.resolve()
    storage.mkdir(parents=True, exist_ok=True)
    ensure_ray(address)
    print(f"sweep {plan.name}: {len(plan.trials)} trials over {len(plan.experiments)} experiment(s), "
          f"at most {plan.max_concurrent_trials} at once; storage {storage}", flush=True)
    tuner = build_tuner(plan, storage, resume)
    grid = tuner.fit()
    return collect_results(plan, grid, storage)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="experiment or suite YAML (default: configs/demo.yaml)")
    parser.add_argument("--scale", choices=SCALES, default=None,
                        help="default: demo for the embedded default, paper otherwise")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every trial")
    parser.add_argument("--trials", type=int, default=None, help="trials (seeds) per grid point")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep (Tuner.restore)")
    parser.add_argument("--address", default=None, help="join this Ray cluster instead of starting a local one")
    parser.add_argument("--storage", default="results", help="checkpoints and results (shared storage on clusters)")
    args = parser.parse_args(argv)
    scale = args.scale or ("demo" if args.config is None else "paper")
    started = time.perf_counter()
    try:
        plan = plan_sweep(args.config, scale, args.set, args.trials)
        written = run_sweep(plan, Path(args.storage), resume=args.resume, address=args.address)
    except (ConfigError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, path in written.items():
        frame = pd.read_parquet(path)
        print(f"\n## {name}\n\n{summary_table(frame, plan.experiments[name].to_dict())}")
    print(f"\nfinished in {time.perf_counter() - started:.0f} s")
    for name, path in written.items():
        print(f"results: {path}   report: python -m orchestrator.report {path.parent} --figures {path.parent / 'figures'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
