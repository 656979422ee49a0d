"""The papers' reported numbers, as named by an experiment config, and matching them to our rows.

A config's ``paper`` section (free-form for the config loader, checked here)::

    paper:
      source: "AL-AC, Table 1"
      metric_names: {mae: MAE, rmse: MSE}      # how the paper prints each metric (it says MSE for RMSE)
      pool_over: [dataset.options.fold]         # optional: settings averaged together (cross-validation)
      results:
        - {dataset: shanghaitech_a, settings: {alac.strategy: pssw, alac.budget: 30},
           mae: 87.9, mae_std: 2.3, rmse: 139.5, rmse_std: 12.7, label: "PSSW + GRL + MX"}

``settings`` keys are dotted config keys; ``n_labeled`` is also accepted and means "at the cycle
with this many labeled images" (AL-AC's budget-M rows read off one longer trial). ``mae``, ``rmse``
and their ``*_std`` are optional (Table 1 of AL-AC prints MAE only, most tables no std); ``label``
is the paper's row name, shown in notes.

A result *matches* a group of our rows when its dataset equals the group's and every listed
setting equals the group's value for that key: the ``setting.<key>`` column when the key was
swept, otherwise the resolved config in ``experiment.json`` (so ``alac.budget: 40`` matches a
run whose fixed budget is 40 and not a smoke run whose budget was scaled down). When several
results match, the one naming the most settings wins.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

#: Keys a ``paper.results`` entry may carry besides ``dataset`` and ``settings``.
METRIC_KEYS = ("mae", "mae_std", "rmse", "rmse_std")
RESULT_KEYS = {"dataset", "settings", "label", *METRIC_KEYS}
PAPER_KEYS = {"source", "metric_names", "results", "pool_over", "notes"}
N_LABELED = "n_labeled"
MISSING = object()  # a group has no value for a key


class PaperFormatError(ValueError):
    """A ``paper`` section that does not have the documented shape; names where and what."""


@dataclasses.dataclass(frozen=True)
class PaperResult:
    """One number (or pair) the paper reports: MAE/RMSE (``None`` when the paper prints none)."""

    dataset: str
    settings: tuple[tuple[str, Any], ...]
    mae: float | None = None
    mae_std: float | None = None
    rmse: float | None = None
    rmse_std: float | None = None
    label: str | None = None
    source: str = ""

    @property
    def names_n_labeled(self) -> bool:
        return any(key == N_LABELED for key, _ in self.settings)


@dataclasses.dataclass(frozen=True)
class PaperReference:
    """A config's whole ``paper`` section, checked."""

    source: str
    metric_names: dict[str, str]
    results: tuple[PaperResult, ...]
    pool_over: tuple[str, ...] = ()


def parse_paper(paper: dict | None, where: str = "paper") -> PaperReference | None:
    """Check and convert a config's ``paper`` mapping; ``None``/empty -> ``None``.

    Raises :class:`PaperFormatError` naming ``where`` and the offending key."""
    if not paper:
        return None
    if not isinstance(paper, dict):
        raise PaperFormatError(f"{where}: expected a mapping, got {paper!r}")
    unknown = sorted(set(paper) - PAPER_KEYS)
    if unknown:
        raise PaperFormatError(f"{where}: unknown key(s) {unknown}; known: {sorted(PAPER_KEYS)}")
    source = paper.get("source", "")
    if not isinstance(source, str):
        raise PaperFormatError(f"{where}.source: expected a string, got {source!r}")
    names = paper.get("metric_names") or {}
    if not isinstance(names, dict) or set(names) - {"mae", "rmse"} or not all(isinstance(v, str) for v in names.values()):
        raise PaperFormatError(f"{where}.metric_names: expected a mapping of mae/rmse to strings, got {names!r}")
    pool_over = paper.get("pool_over") or []
    if not isinstance(pool_over, list) or not all(isinstance(k, str) for k in pool_over):
        raise PaperFormatError(f"{where}.pool_over: expected a list of dotted keys, got {pool_over!r}")
    raw_results = paper.get("results") or []
    if not isinstance(raw_results, list):
        raise PaperFormatError(f"{where}.results: expected a list, got {raw_results!r}")
    results = tuple(_parse_result(entry, f"{where}.results[{i}]", source) for i, entry in enumerate(raw_results))
    return PaperReference(source, {"mae": "MAE", "rmse": "RMSE", **names}, results, tuple(pool_over))


def _parse_result(entry: Any, where: str, source: str) -> PaperResult:
    if not isinstance(entry, dict):
        raise PaperFormatError(f"{where}: expected a mapping, got {entry!r}")
    unknown = sorted(set(entry) - RESULT_KEYS)
    if unknown:
        raise PaperFormatError(f"{where}: unknown key(s) {unknown}; known: {sorted(RESULT_KEYS)}")
    dataset = entry.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise PaperFormatError(f"{where}.dataset: expected a dataset name, got {dataset!r}")
    settings = entry.get("settings") or {}
    if not isinstance(settings, dict):
        raise PaperFormatError(f"{where}.settings: expected a mapping of dotted keys, got {settings!r}")
    for key, value in settings.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise PaperFormatError(f"{where}.settings.{key}: expected a single value (text, number, true/false), "
                                   f"got {value!r}")
    metrics = {}
    for key in METRIC_KEYS:
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise PaperFormatError(f"{where}.{key}: expected a number, got {value!r}")
        metrics[key] = None if value is None else float(value)
    if metrics["mae"] is None and metrics["rmse"] is None:
        raise PaperFormatError(f"{where}: names neither mae nor rmse")
    label = entry.get("label")
    if label is not None and not isinstance(label, str):
        raise PaperFormatError(f"{where}.label: expected a string, got {label!r}")
    return PaperResult(dataset, tuple(settings.items()), label=label, source=source, **metrics)


def normalise(value: Any) -> Any:
    """A comparable form: booleans stay booleans, numbers become floats, the rest strings;
    ``None``/NaN -> ``MISSING``. (``True`` must not equal ``1.0``, nor ``"10"`` equal ``10``.)"""
    if value is None or value is MISSING:
        return MISSING
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return MISSING if math.isnan(value) else ("number", float(value))
    return ("text", str(value))


def config_value(config: dict | None, dotted: str) -> Any:
    """``config_value({"alac": {"budget": 40}}, "alac.budget") -> 40``; ``MISSING`` when absent."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def best_match(results: tuple[PaperResult, ...], dataset: str, value_of) -> PaperResult | None:
    """The paper result for a group: ``value_of(key)`` gives the group's value (or ``MISSING``).
    Ties in specificity go to the first listed."""
    best, best_size = None, -1
    for result in results:
        if result.dataset != dataset:
            continue
        if all(normalise(value_of(key)) is not MISSING and normalise(value_of(key)) == normalise(value)
               for key, value in result.settings):
            if len(result.settings) > best_size:
                best, best_size = result, len(result.settings)
    return best
