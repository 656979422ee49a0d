"""``python -m orchestrator.trial``: one trial, without Tune — for debugging and for users.

    python -m orchestrator.trial --config configs/alac/demo.yaml --scale smoke --seed 1 \
        --set alac.strategy=random --out results/one_trial

Writes ``OUT/rows.parquet`` (one row per cycle or stage) and a checkpoint after every cycle;
running the same command again resumes where it stopped. Prints the final row last.
On a terminal, stderr shows a progress line (cycles or stages with an ETA and, in-process, the
scoring of the test split and the pool and the CSS-CCNN epochs); in a log, only the lines.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from orchestrator.alac.trial import ALACTrial
from orchestrator.config import SCALES, ConfigError, ExperimentConfig, load_config
from orchestrator.core import progress
from orchestrator.core.samples import open_split
from orchestrator.cssccnn.trial import CSSCCNNTrial
from orchestrator.data import DatasetError

#: method -> its trial runner (a :class:`orchestrator.core.skeleton.TrialRunner`).
TRIAL_RUNNERS = {runner.method: runner for runner in (ALACTrial, CSSCCNNTrial)}


def make_trial(config: ExperimentConfig, out_dir: str | Path, log=print, trial_id: str = "local",
               cache_dir: str | Path | None = None):
    """The trial runner for ``config.method``; validates everything before any work.
    ``cache_dir``: work shared between trials (default: ``cache/`` beside ``out_dir``)."""
    return TRIAL_RUNNERS[config.method](config, out_dir, log=log, trial_id=trial_id, cache_dir=cache_dir)


def validate_experiment(config: ExperimentConfig) -> None:
    """Everything a trial checks before work (dataset layout, budgets, settings, weights files),
    without building one: opens both splits and calls the method's validator."""
    pool = open_split(config.dataset, config.dataset.train_split)
    open_split(config.dataset, config.dataset.test_split)
    TRIAL_RUNNERS[config.method].validate(config, len(pool))


def trial_label(config: ExperimentConfig) -> str:
    """``alac_demo seed 1 cycles``: what the trial's progress line counts."""
    return f"{config.experiment} seed {config.seed} {'cycles' if config.method == 'alac' else 'stages'}"


def run_with_progress(trial, fail_after_cycle: int | None = None):
    """``trial.run()`` under a progress line over its cycles/stages (drawn only where a command
    line enabled :mod:`orchestrator.core.progress`): a cycle finished before a resume counts as
    done, not in the rate; the note is the last MAE measured."""
    cycles = list(trial.cycles())
    unit = "cycle" if trial.config.method == "alac" else "stage"
    with progress.bar(trial_label(trial.config), len(cycles), unit=unit) as line:
        def cycle_done(row: dict) -> None:
            before = cycles.index(row["cycle"])  # cycles ahead of this one: done, maybe by an earlier run
            if line.done < before:
                line.skip(before - line.done)
            mae = row.get("mae", math.nan)
            line.advance(1, note=f"MAE {mae:.2f}" if math.isfinite(mae) else None)

        return trial.run(fail_after_cycle=fail_after_cycle, on_stage_end=cycle_done)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.trial", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--scale", choices=SCALES, default="paper")
    parser.add_argument("--seed", type=int, default=None, help="trial seed (default: the config's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.epochs=2")
    parser.add_argument("--out", required=True, help="trial folder (rows.parquet, checkpoint.pt)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="work shared between trials, e.g. the label-free pretraining (default: OUT/../cache)")
    parser.add_argument("--fail-after-cycle", type=int, default=None, help=argparse.SUPPRESS)  # resume tests
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.scale, args.set, seed=args.seed)
        trial = make_trial(config, args.out, log=progress.echo, cache_dir=args.cache)
    except (ConfigError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with progress.terminal_progress(progress.stderr_is_terminal()):  # in-process work only; never on Ray
        rows = run_with_progress(trial, fail_after_cycle=args.fail_after_cycle)
    last = rows.iloc[-1]
    print(f"rows written to {Path(args.out) / 'rows.parquet'}")
    print(" ".join(f"{k}={last[k]}" for k in ("experiment", "method", "dataset", "seed", "cycle", "n_labeled",
                                                "labeled_points", "mae", "rmse", "status")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
