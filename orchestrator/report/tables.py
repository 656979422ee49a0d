"""Results folders -> aggregated rows for the report: loading, final rows, mean ± std per group,
paper matching. Rendering lives in :mod:`orchestrator.report`, figures in :mod:`orchestrator.report.figures`.

Long-format input (DESIGN.md §4): one row per (trial, cycle or stage); a trial's final row is the
one with the largest ``cycle``; swept settings are ``setting.<dotted key>`` columns.

Pooled settings (``--pool KEY`` or a config's ``paper.pool_over``, e.g. UCF_CC_50's five folds) are
averaged within each seed first, then mean ± std is taken over seeds: the papers' ± is the spread
over trials of the k-fold result, which pooling every fold x seed would inflate with the fold-to-
fold spread. Such rows record how many folds each seed completed (``per_seed``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from orchestrator.report.paper import (
    MISSING,
    N_LABELED,
    PaperFormatError,
    PaperReference,
    PaperResult,
    best_match,
    config_value,
    parse_paper,
)

RESULTS_FILE = "results.parquet"
CONFIG_FILE = "experiment.json"
SETTING_PREFIX = "setting."
REQUIRED_COLUMNS = ("experiment", "method", "dataset", "trial_id", "cycle", "mae", "rmse", "status")
FORMATS = ("markdown", "latex", "csv")


class ReportError(ValueError):
    """Unreadable or incomplete results; the message names the path or column."""


@dataclasses.dataclass(frozen=True)
class ResultsSet:
    """Rows of one or more results folders: ``frame`` (long format, one row per trial and
    cycle/stage), ``configs`` (experiment name -> resolved config dict from experiment.json) and
    the folders themselves (for ``examples/``)."""

    frame: pd.DataFrame
    configs: dict[str, dict]
    dirs: tuple[Path, ...]


@dataclasses.dataclass(frozen=True)
class GroupKey:
    """What a table row is about; ``settings`` = (dotted key, value or None) in column order."""

    experiment: str
    method: str
    dataset: str
    settings: tuple[tuple[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof 1; NaN when n < 2) of one metric over n trials."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values) -> Stat:
        v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").dropna(), dtype=np.float64)
        return cls(float(v.mean()) if v.size else math.nan, float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size))


@dataclasses.dataclass(frozen=True)
class GroupSummary:
    """A final-table row. ``n_labeled``: the final labeled-set size when every trial agrees."""

    key: GroupKey
    n_labeled: int | None
    mae: Stat
    rmse: Stat
    n_ok: int
    n_failed: int
    errors: tuple[str, ...]
    paper: PaperResult | None
    #: MAE of predicting the mean count of each trial's labeled images (AL-AC rows), if recorded.
    mean_baseline: Stat | None = None
    #: (seed, pooled settings it completed) when settings were pooled; stats are then over seeds.
    per_seed: tuple[tuple[Any, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class CycleSummary:
    """A row of the AL-AC "MAE vs labeled images" table (ok rows of that cycle only)."""

    key: GroupKey
    n_labeled: int
    mae: Stat
    rmse: Stat
    paper: PaperResult | None
    mean_baseline: Stat | None = None
    per_seed: tuple[tuple[Any, int], ...] = ()


def pooled_columns(frame: pd.DataFrame, pooled: tuple[str, ...]) -> list[str]:
    """The ``setting.*`` columns of the pooled keys that this frame has."""
    return [SETTING_PREFIX + k for k in dict.fromkeys(pooled) if SETTING_PREFIX + k in frame.columns]


def seed_values(rows: pd.DataFrame, column: str, pooled_cols: list[str]) -> pd.Series:
    """``column`` as numbers: each seed's mean over its pooled settings (folds) when some are
    pooled, else one value per row."""
    values = pd.to_numeric(rows[column], errors="coerce")
    if not pooled_cols or "seed" not in rows:
        return values
    return values.groupby(rows["seed"], dropna=False).mean()


def seed_stat(rows: pd.DataFrame, column: str, pooled_cols: list[str]) -> Stat:
    """Mean ± std over trials, or over seeds of the per-seed pooled mean (see :func:`seed_values`)."""
    return Stat.of(seed_values(rows, column, pooled_cols))


def completed_per_seed(rows: pd.DataFrame, pooled_cols: list[str]) -> tuple[tuple[Any, int], ...]:
    """(seed, how many distinct pooled settings it has a MAE for), by seed; () when nothing is pooled."""
    if not pooled_cols or "seed" not in rows:
        return ()
    done = rows[pd.to_numeric(rows["mae"], errors="coerce").notna()]
    counts = done.drop_duplicates(["seed"] + pooled_cols).groupby("seed", dropna=False).size()
    return tuple((_plain(seed), int(n)) for seed, n in sorted(counts.items(), key=lambda kv: str(kv[0])))


def mean_baseline_stat(rows: pd.DataFrame, pooled_cols: list[str] = ()) -> Stat | None:
    """Mean ± std of the rows' ``mean_baseline_mae`` (AL-AC's Mean baseline), or None."""
    if "mean_baseline_mae" not in rows or not rows["mean_baseline_mae"].notna().any():
        return None
    return seed_stat(rows[rows["mean_baseline_mae"].notna()], "mean_baseline_mae", list(pooled_cols))


# ---------------------------------------------------------------------------------------- loading
def _results_dirs(path: Path) -> list[Path]:
    if not path.is_dir():
        raise ReportError(f"results directory not found: {path}")
    if (path / RESULTS_FILE).is_file():
        return [path]
    children = sorted(p.parent for p in path.glob(f"*/{RESULTS_FILE}"))
    if not children:
        raise ReportError(f"{path}: no {RESULTS_FILE} here (expected {path / RESULTS_FILE}); "
                          f"run python -m orchestrator.sweep first")
    return children


def load_results(paths: list[str | Path]) -> ResultsSet:
    """Read ``results.parquet`` (+ ``experiment.json`` when present) of each folder."""
    frames, configs, dirs = [], {}, []
    for given in paths:
        for directory in _results_dirs(Path(given)):
            parquet = directory / RESULTS_FILE
            try:
                frame = pd.read_parquet(parquet)
            except Exception as e:  # pyarrow raises several types for a bad file
                raise ReportError(f"{parquet}: not a readable Parquet file: {e}") from e
            missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
            if missing:
                raise ReportError(f"{parquet}: missing required column(s) {missing}")
            config_path = directory / CONFIG_FILE
            if config_path.is_file():
                try:
                    config = json.loads(config_path.read_text())
                except (OSError, json.JSONDecodeError) as e:
                    raise ReportError(f"{config_path}: not readable JSON: {e}") from e
                configs[str(config.get("experiment", directory.name))] = config
            frames.append(frame)
            dirs.append(directory)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return ResultsSet(frame, configs, tuple(dirs))


def paper_references(configs: dict[str, dict], paper_file: str | Path | None = None) -> dict[str, PaperReference]:
    """Experiment -> its paper numbers: from each experiment.json, or every experiment from the
    ``paper`` section of ``paper_file`` (any config YAML) when given."""
    try:
        if paper_file is not None:
            path = Path(paper_file)
            try:
                data = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as e:
                raise ReportError(f"--paper {path}: unreadable YAML: {e}") from e
            ref = parse_paper((data or {}).get("paper") if isinstance(data, dict) else None, f"{path}: paper")
            if ref is None:
                raise ReportError(f"--paper {path}: no 'paper' section")
            return {name: ref for name in configs} | {"*": ref}
        refs = {name: parse_paper(cfg.get("paper"), f"{name}/{CONFIG_FILE}: paper") for name, cfg in configs.items()}
        return {name: ref for name, ref in refs.items() if ref is not None}
    except PaperFormatError as e:
        raise ReportError(str(e)) from e


def experiment_scales(results: ResultsSet) -> dict[str, str | None]:
    """Experiment -> the scale it ran at (experiment.json, else the rows' ``scale``; None if unknown)."""
    frame = results.frame
    scales: dict[str, str | None] = {}
    for name in dict.fromkeys(frame["experiment"].astype(str)):
        scale = (results.configs.get(name) or {}).get("scale")
        if scale is None and "scale" in frame:
            values = frame.loc[frame["experiment"].astype(str) == name, "scale"].dropna().unique()
            scale = str(values[0]) if len(values) == 1 else None
        scales[name] = scale
    return scales


def paper_scale_only(refs: dict[str, PaperReference], results: ResultsSet) -> tuple[dict[str, PaperReference], list[str]]:
    """Keep the paper's numbers only for experiments run at paper scale (a smoke run's baseline
    must not sit beside the paper's as if comparable); a note for each experiment left out."""
    kept, notes = {}, []
    for name, scale in experiment_scales(results).items():
        ref = refs.get(name) or refs.get("*")
        if ref is None:
            continue
        if scale in (None, "paper"):
            kept[name] = ref
        else:
            notes.append(f"paper numbers ({ref.source or 'config'}) not compared with {name}: it ran at scale "
                         f"{scale}, the paper's numbers are for paper scale")
    return kept, notes


# ------------------------------------------------------------------------------------ aggregation
def setting_keys(frame: pd.DataFrame, pool_over: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys of the ``setting.*`` columns, in column order, without pooled ones."""
    return [c[len(SETTING_PREFIX):] for c in frame.columns
            if c.startswith(SETTING_PREFIX) and c[len(SETTING_PREFIX):] not in pool_over]


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Each trial's final row: the one with the largest ``cycle`` (ties: the last written)."""
    ordered = frame.assign(_order=np.arange(len(frame))).sort_values(["cycle", "_order"], kind="stable")
    return ordered.groupby(["experiment", "trial_id"], sort=False, dropna=False).tail(1).drop(columns="_order")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value


def _groups(frame: pd.DataFrame, keys: list[str], extra: list[str] = ()):
    columns = ["experiment", "method", "dataset"] + [SETTING_PREFIX + k for k in keys] + list(extra)
    for values, rows in frame.groupby(columns, dropna=False, sort=False):
        values = [_plain(v) for v in values]
        key = GroupKey(str(values[0]), str(values[1]), str(values[2]),
                       tuple(zip(keys, values[3:3 + len(keys)])))
        yield key, values[3 + len(keys):], rows


def _value_getter(key: GroupKey, configs: dict[str, dict], n_labeled: int | None, pooled: tuple[str, ...]):
    settings = dict(key.settings)

    def value_of(dotted: str) -> Any:
        if dotted == N_LABELED:
            return MISSING if n_labeled is None else n_labeled
        if dotted in pooled:
            return MISSING
        if settings.get(dotted) is not None:
            return settings[dotted]
        return config_value(configs.get(key.experiment), dotted)

    return value_of


def _reference(refs: dict[str, PaperReference], experiment: str) -> PaperReference | None:
    return refs.get(experiment) or refs.get("*")


def group_sort_key(key: GroupKey, configs: dict[str, dict], order: dict[str, int]):
    """Experiments in the order read, then method, dataset, then settings in the config's grid order."""
    parts: list[Any] = [order.get(key.experiment, 0), key.method, key.dataset]
    grid = (configs.get(key.experiment) or {}).get("grid") or {}
    for dotted, value in key.settings:
        listed = grid.get(dotted) or []
        position = next((i for i, v in enumerate(listed) if _plain(v) == value and type(_plain(v)) is type(value)), None)
        parts.append((0, position, "") if position is not None else (1, 0, "" if value is None else str(value)))
    return parts


def summarize(results: ResultsSet, refs: dict[str, PaperReference] | None = None,
              pool_over: tuple[str, ...] = ()) -> list[GroupSummary]:
    """The final table: one :class:`GroupSummary` per experiment/method/dataset/settings."""
    refs = refs or {}
    frame = results.frame
    pooled = tuple(pool_over) + tuple(k for ref in refs.values() for k in ref.pool_over)
    keys = setting_keys(frame, pooled)
    pooled_cols = pooled_columns(frame, pooled)
    final = final_rows(frame)
    order = {name: i for i, name in enumerate(dict.fromkeys(frame["experiment"].astype(str)))}
    summaries = []
    for key, _, rows in _groups(final, keys):
        ok = rows[rows["status"] == "ok"]
        failed = rows[rows["status"] != "ok"]
        errors = tuple(f"{t}: {str(e).strip().splitlines()[0] if str(e).strip() else '(no message)'}"
                       for t, e in zip(failed["trial_id"], failed.get("error", pd.Series([""] * len(failed)))))
        n_labeled = None
        if "n_labeled" in ok and ok["n_labeled"].notna().any() and ok["n_labeled"].nunique() == 1:
            n_labeled = int(ok["n_labeled"].iloc[0])
        ref = _reference(refs, key.experiment)
        paper = best_match(ref.results, key.dataset, _value_getter(key, results.configs, n_labeled, pooled)) if ref else None
        summaries.append(GroupSummary(key, n_labeled, seed_stat(ok, "mae", pooled_cols), seed_stat(ok, "rmse", pooled_cols),
                                      len(ok), len(failed), errors, paper, mean_baseline_stat(ok, pooled_cols),
                                      completed_per_seed(ok, pooled_cols)))
    return sorted(summaries, key=lambda s: group_sort_key(s.key, results.configs, order))


def summarize_cycles(results: ResultsSet, refs: dict[str, PaperReference] | None = None,
                     pool_over: tuple[str, ...] = ()) -> list[CycleSummary]:
    """AL-AC's MAE against labeled images: every cycle's ok rows, per setting and ``n_labeled``.
    Paper results that name ``n_labeled`` are matched here."""
    refs = refs or {}
    frame = results.frame
    if "n_labeled" not in frame:
        return []
    frame = frame[(frame["method"] == "alac") & (frame["status"] == "ok") & frame["n_labeled"].notna()]
    if frame.empty:
        return []
    pooled = tuple(pool_over) + tuple(k for ref in refs.values() for k in ref.pool_over)
    keys = setting_keys(frame, pooled)
    pooled_cols = pooled_columns(frame, pooled)
    order = {name: i for i, name in enumerate(dict.fromkeys(frame["experiment"].astype(str)))}
    out = []
    for key, (n_labeled,), rows in _groups(frame, keys, ["n_labeled"]):
        ref = _reference(refs, key.experiment)
        cycle_results = tuple(r for r in ref.results if r.names_n_labeled) if ref else ()
        paper = best_match(cycle_results, key.dataset, _value_getter(key, results.configs, int(n_labeled), pooled))
        out.append(CycleSummary(key, int(n_labeled), seed_stat(rows, "mae", pooled_cols), seed_stat(rows, "rmse", pooled_cols),
                                paper, mean_baseline_stat(rows, pooled_cols), completed_per_seed(rows, pooled_cols)))
    return sorted(out, key=lambda c: (group_sort_key(c.key, results.configs, order), c.n_labeled))
