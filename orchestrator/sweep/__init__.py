"""Repeated trials as a Ray Tune sweep: ``plan`` expands a config or suite into validated trials
(grid x paired seeds), ``tune`` runs them (retries, resume, one Parquet per experiment), and
``python -m orchestrator.sweep`` (``__main__``) is the product's main job."""

from orchestrator.sweep.plan import SweepPlan, TrialSpec, plan_sweep
from orchestrator.sweep.tune import INJECT_FAILURE_ENV, run_sweep

__all__ = ["INJECT_FAILURE_ENV", "SweepPlan", "TrialSpec", "plan_sweep", "run_sweep"]
