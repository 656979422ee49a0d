"""``python -m orchestrator.sweep``: the product's main job — repeated trials as a Ray Tune sweep.

    python -m orchestrator.sweep                                   # embedded default: configs/demo.yaml
    python -m orchestrator.sweep --config configs/alac/table1_pssw_vs_random_shb.yaml --scale paper
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
import sys
import time
from pathlib import Path

import pandas as pd

from orchestrator.config import SCALES, ConfigError
from orchestrator.data import DatasetError
from orchestrator.sweep.plan import plan_sweep
from orchestrator.sweep.tune import run_sweep


def summary_table(frame: pd.DataFrame, config: dict) -> str:
    """The report's table: mean ± std of MAE/RMSE at each trial's final row, per setting, failed
    trials counted, the paper's numbers beside ours at paper scale."""
    from orchestrator.report.render import render_table

    return render_table(frame, "markdown", configs={config["experiment"]: config})


def paired_table(frame: pd.DataFrame, config: dict) -> str:
    """The final-MAE paired comparisons of the settings (A - B on shared seeds, 95 % CI, p), as
    the report writes them; empty when nothing pairs."""
    from orchestrator.report.paired import paired_comparisons
    from orchestrator.report.render import paired_rows, render
    from orchestrator.report.tables import ResultsSet

    final = [c for c in paired_comparisons(ResultsSet(frame, {config["experiment"]: config}, ())) if c.n_labeled is None]
    return render(*paired_rows(final), "markdown") if final else ""


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
    parser.add_argument("--verbose", action="store_true",
                        help="Ray Tune's full output and the trials' own log lines (default: one status line per "
                             "cycle/stage and, on a terminal, a live table)")
    args = parser.parse_args(argv)
    scale = args.scale or ("demo" if args.config is None else "paper")
    started = time.perf_counter()
    try:
        plan = plan_sweep(args.config, scale, args.set, args.trials)
        written = run_sweep(plan, Path(args.storage), resume=args.resume, address=args.address,
                            verbose=args.verbose)
    except (ConfigError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from orchestrator.report.document import write_folder_report

    for name, path in written.items():
        frame, config = pd.read_parquet(path), plan.experiments[name].to_dict()
        print(f"\n## {name}\n{summary_table(frame, config)}")  # compact: `make demo` stays under 60 lines
        paired = paired_table(frame, config)  # its columns say what it is (n pairs, mean A-B, 95% CI, p)
        if paired:
            print(paired)
    print(f"finished in {time.perf_counter() - started:.0f} s")
    for name, path in written.items():
        markdown, page, _ = write_folder_report(path.parent, [str(path.parent)])
        print(f"report: {page} ({markdown.name} and the results, {path.name}, beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
