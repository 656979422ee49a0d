"""The results schema (DESIGN.md §4): one row per (trial, cycle or stage), long format, written
atomically to Parquet (:func:`orchestrator.core.files.write_parquet_atomic`)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pandas as pd

from orchestrator.core.files import write_parquet_atomic

__all__ = ["ROW_COLUMNS", "code_version", "rows_frame", "write_parquet_atomic"]

#: Columns every row has, in this order; method-specific columns follow.
ROW_COLUMNS = [
    "experiment", "method", "dataset", "scale", "trial_id", "seed", "cycle", "stage",
    "n_labeled", "labeled_points", "mae", "rmse",
    "train_seconds", "score_seconds", "select_seconds", "evaluate_seconds",
    "status", "error", "code_version",
]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe`` of the source tree when it is a checkout (``-dirty`` when modified),
    else the package version."""
    here = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return version("label-efficient-counting")
    except Exception:
        return "unknown"


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a DataFrame with the schema's columns first (missing ones as NA)."""
    frame = pd.DataFrame(rows)
    for column in ROW_COLUMNS:
        if column not in frame:
            frame[column] = pd.NA
    extra = [c for c in frame.columns if c not in ROW_COLUMNS]
    return frame[ROW_COLUMNS + extra]
