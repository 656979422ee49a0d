"""Rendering the results tables (markdown, LaTeX, CSV) and their notes; the CLI is
:mod:`orchestrator.report.__main__` (``python -m orchestrator.report``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.report.paper import PaperReference, PaperResult
from orchestrator.report.tables import (
    FORMATS,
    REQUIRED_COLUMNS,
    SETTING_PREFIX,
    CycleSummary,
    GroupSummary,
    ReportError,
    ResultsSet,
    load_results,
    paper_references,
    paper_scale_only,
    summarize,
    summarize_cycles,
)

__all__ = ["ReportError", "load_results", "paper_references", "render", "render_table", "report_text",
           "summarize", "summarize_cycles"]


# -------------------------------------------------------------------------------------- rendering
#: The AL-AC tables' column for the Mean baseline (each test image predicted as the mean count of
#: the trial's labeled images), beside the strategies it is measured with.
MEAN_COLUMN = "Mean baseline MAE"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pm(mean: float | None, std: float | None, digits: int = 2) -> str:
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {_num(std, digits)}" if std is not None else f"{mean:.{digits}f}"


def _paper_cell(paper: PaperResult | None, metric: str) -> str:
    if paper is None or getattr(paper, metric) is None:
        return ""
    return _pm(getattr(paper, metric), getattr(paper, f"{metric}_std"), 1)


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _short_names(keys: list[str]) -> list[str]:
    """Column titles: a key's last part when that is unambiguous, else the whole dotted key."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return [s if last.count(s) == 1 else k for s, k in zip(last, keys)]


def _metric_names(refs: dict[str, PaperReference]) -> dict[str, str]:
    for ref in refs.values():
        return ref.metric_names
    return {"mae": "MAE", "rmse": "RMSE"}


def table_rows(summaries: list[GroupSummary], refs: dict[str, PaperReference]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the final table (text)."""
    keys = [k for k, _ in summaries[0].key.settings] if summaries else []
    many = len({s.key.experiment for s in summaries}) > 1
    names = _metric_names(refs)
    with_paper = any(s.paper is not None for s in summaries)
    with_mean = any(s.mean_baseline is not None for s in summaries)
    header = (["experiment"] if many else []) + ["method", "dataset"] + _short_names(keys) + ["labeled", "MAE", "RMSE", "n", "failed"]
    if with_mean:
        header += [MEAN_COLUMN]
    if with_paper:
        header += [f"paper {names['mae']}", f"paper {names['rmse']}"]
    rows = []
    for s in summaries:
        cells = ([s.key.experiment] if many else []) + [s.key.method, s.key.dataset]
        cells += [_show(v) for _, v in s.key.settings]
        cells += [_show(s.n_labeled), _pm(s.mae.mean, s.mae.std), _pm(s.rmse.mean, s.rmse.std), str(s.n_ok), str(s.n_failed)]
        if with_mean:
            cells += [_pm(s.mean_baseline.mean, s.mean_baseline.std) if s.mean_baseline else ""]
        if with_paper:
            cells += [_paper_cell(s.paper, "mae"), _paper_cell(s.paper, "rmse")]
        rows.append(cells)
    return header, rows


def cycle_rows(cycles: list[CycleSummary], refs: dict[str, PaperReference]) -> tuple[list[str], list[list[str]]]:
    keys = [k for k, _ in cycles[0].key.settings] if cycles else []
    many = len({c.key.experiment for c in cycles}) > 1
    with_paper = any(c.paper is not None for c in cycles)
    with_mean = any(c.mean_baseline is not None for c in cycles)
    header = (["experiment"] if many else []) + ["dataset"] + _short_names(keys) + ["labeled", "MAE", "RMSE", "n"]
    if with_mean:
        header += [MEAN_COLUMN]
    if with_paper:
        header += [f"paper {_metric_names(refs)['mae']}"]
    rows = []
    for c in cycles:
        cells = ([c.key.experiment] if many else []) + [c.key.dataset] + [_show(v) for _, v in c.key.settings]
        cells += [str(c.n_labeled), _pm(c.mae.mean, c.mae.std), _pm(c.rmse.mean, c.rmse.std), str(c.mae.n)]
        if with_mean:
            cells += [_pm(c.mean_baseline.mean, c.mean_baseline.std) if c.mean_baseline else ""]
        if with_paper:
            cells += [_paper_cell(c.paper, "mae")]
        rows.append(cells)
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    numeric = {"labeled", "MAE", "RMSE", "n", "failed", MEAN_COLUMN} | {h for h in header if h.startswith("paper ")}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" if h in numeric else "---" for h in header) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_cell(text: str) -> str:
    escaped = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    return escaped.replace("±", r"$\pm$")


def _latex(header: list[str], rows: list[list[str]]) -> str:
    numeric = {"labeled", "MAE", "RMSE", "n", "failed", MEAN_COLUMN} | {h for h in header if h.startswith("paper ")}
    spec = "".join("r" if h in numeric else "l" for h in header)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(_latex_cell(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_cell(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def csv_table(summaries: list[GroupSummary]) -> str:
    """Machine-readable final table: full-precision numbers, one column per quantity."""
    records = []
    for s in summaries:
        record = {"experiment": s.key.experiment, "method": s.key.method, "dataset": s.key.dataset}
        record |= {SETTING_PREFIX + k: v for k, v in s.key.settings}
        record |= {"n_labeled": s.n_labeled, "mae_mean": s.mae.mean, "mae_std": s.mae.std, "rmse_mean": s.rmse.mean,
                   "rmse_std": s.rmse.std, "n": s.n_ok, "failed": s.n_failed}
        if s.mean_baseline is not None:
            record |= {"mean_baseline_mae_mean": s.mean_baseline.mean, "mean_baseline_mae_std": s.mean_baseline.std}
        p = s.paper
        record |= {"paper_mae": p and p.mae, "paper_mae_std": p and p.mae_std, "paper_rmse": p and p.rmse,
                   "paper_rmse_std": p and p.rmse_std, "paper_label": p and p.label, "paper_source": p and p.source}
        records.append(record)
    return pd.DataFrame.from_records(records).to_csv(index=False, lineterminator="\n")


def render(header: list[str], rows: list[list[str]], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}; choose from {list(FORMATS)}")
    if fmt == "latex":
        return _latex(header, rows)
    if fmt == "csv":
        return pd.DataFrame(rows, columns=header).to_csv(index=False, lineterminator="\n")
    return _markdown(header, rows)


def render_table(frame: pd.DataFrame, fmt: str = "markdown", configs: dict[str, dict] | None = None,
                 paper_file: str | Path | None = None, pool_over: tuple[str, ...] = ()) -> str:
    """The final table of an in-memory results frame (used by the sweep's closing summary)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ReportError(f"results frame: missing required column(s) {missing}")
    results = ResultsSet(frame, dict(configs or {}), ())
    every_ref = paper_references(results.configs, paper_file)
    refs, _ = paper_scale_only(every_ref, results)
    summaries = summarize(results, refs, tuple(pool_over) + pooled_keys(every_ref))
    return csv_table(summaries) if fmt == "csv" else render(*table_rows(summaries, refs), fmt)


def pooled_keys(refs: dict[str, PaperReference]) -> tuple[str, ...]:
    """Settings the configs' ``paper.pool_over`` averages over (e.g. cross-validation folds)."""
    return tuple(dict.fromkeys(k for ref in refs.values() for k in ref.pool_over))


def notes(summaries: list[GroupSummary], refs: dict[str, PaperReference], cycles: list[CycleSummary]) -> list[str]:
    """Failures with their errors, paper sources, and paper results that matched no row."""
    out = []
    for s in summaries:
        for error in s.errors:
            out.append(f"failed trial ({s.key.dataset}, {', '.join(f'{k}={_show(v)}' for k, v in s.key.settings)}) {error}")
    used = {s.paper for s in summaries if s.paper} | {c.paper for c in cycles if c.paper}
    distinct: list[PaperReference] = []
    for ref in refs.values():  # one note per distinct reference (several folders may share one)
        if ref not in distinct:
            distinct.append(ref)
    for ref in distinct:
        if ref.results and not any(r in used for r in ref.results):
            out.append(f"paper numbers ({ref.source or 'config'}): none of its {len(ref.results)} results match these "
                       f"runs' settings (another scale, budget or dataset?)")
            continue
        if ref.source:
            out.append(f"paper numbers: {ref.source}" + (f" (pooled over {', '.join(ref.pool_over)})" if ref.pool_over else ""))
        for r in ref.results:
            if r not in used:
                where = ", ".join(f"{k}={_show(v)}" for k, v in r.settings)
                out.append(f"no run matches paper result {r.label or ''} [{r.dataset}; {where}]: "
                           f"{ref.metric_names['mae']} {_paper_cell(r, 'mae') or '-'}, "
                           f"{ref.metric_names['rmse']} {_paper_cell(r, 'rmse') or '-'}")
    return out


def report_text(results: ResultsSet, fmt: str = "markdown", refs: dict[str, PaperReference] | None = None,
                pool_over: tuple[str, ...] = (), extra_notes: list[str] | None = None) -> str:
    """Everything printed to stdout: the final table, then (markdown/latex) the per-cycle table
    and notes. ``csv`` prints the final table only, so the output stays one CSV."""
    refs = refs or {}
    summaries = summarize(results, refs, pool_over)
    if fmt == "csv":
        return csv_table(summaries)
    cycles = summarize_cycles(results, refs, pool_over)
    comment = "% " if fmt == "latex" else "- "
    parts = [render(*table_rows(summaries, refs), fmt)]
    if cycles:
        title = "MAE against labeled images (AL-AC, every cycle; mean ± std over trials)"
        parts.append(("% " if fmt == "latex" else "### ") + title + "\n\n" + render(*cycle_rows(cycles, refs), fmt))
    lines = notes(summaries, refs, cycles) + list(extra_notes or [])
    if lines:
        parts.append("\n".join(comment + line for line in lines))
    return "\n\n".join(parts) + "\n"
