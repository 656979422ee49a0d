"""Rendering the results tables (markdown, LaTeX, CSV) and their notes; the CLI is
:mod:`orchestrator.report.__main__` (``python -m orchestrator.report``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.report.paired import MEAN_BASELINE, TEST_RULE, Comparison, paired_comparisons, paired_csv
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

__all__ = ["ReportError", "load_results", "paired_rows", "paper_references", "render", "render_table", "report_text",
           "summarize", "summarize_cycles"]


# -------------------------------------------------------------------------------------- rendering
#: The AL-AC tables' column for the Mean baseline (each test image predicted as the mean count of
#: the trial's labeled images), beside the strategies it is measured with.
MEAN_COLUMN = "Mean baseline MAE"
#: Right-aligned columns (numbers); the others are left-aligned.
NUMERIC_COLUMNS = {"labeled", "MAE", "RMSE", "n", "failed", MEAN_COLUMN, "n pairs", "mean A-B", "95% CI", "p"}


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


def per_seed_header(pooled: tuple[str, ...]) -> str:
    """``folds per seed`` for ``dataset.options.fold``: how many pooled settings each seed completed."""
    names = "/".join(k.rsplit(".", 1)[-1] for k in dict.fromkeys(pooled)) or "pooled setting"
    return f"{names}s per seed"


def per_seed_cell(per_seed: tuple[tuple[Any, int], ...]) -> str:
    """``5`` when every seed completed 5, else ``seed 0: 5, seed 1: 4, ...``."""
    if not per_seed:
        return ""
    counts = {n for _, n in per_seed}
    if len(counts) == 1:
        return str(counts.pop())
    return ", ".join(f"seed {_show(seed)}: {n}" for seed, n in per_seed)


def table_rows(summaries: list[GroupSummary], refs: dict[str, PaperReference],
               pooled: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the final table (text). Pooled rows: ``n`` counts seeds (each the mean
    of its folds), ``failed`` the fold trials that failed, and a column says how many folds each
    seed completed."""
    keys = [k for k, _ in summaries[0].key.settings] if summaries else []
    with_seeds = any(s.per_seed for s in summaries)
    many = len({s.key.experiment for s in summaries}) > 1
    names = _metric_names(refs)
    with_paper = any(s.paper is not None for s in summaries)
    with_mean = any(s.mean_baseline is not None for s in summaries)
    header = (["experiment"] if many else []) + ["method", "dataset"] + _short_names(keys) + ["labeled", "MAE", "RMSE", "n", "failed"]
    if with_seeds:
        header += [per_seed_header(pooled)]
    if with_mean:
        header += [MEAN_COLUMN]
    if with_paper:
        header += [f"paper {names['mae']}", f"paper {names['rmse']}"]
    rows = []
    for s in summaries:
        cells = ([s.key.experiment] if many else []) + [s.key.method, s.key.dataset]
        cells += [_show(v) for _, v in s.key.settings]
        n = s.mae.n if s.per_seed else s.n_ok
        cells += [_show(s.n_labeled), _pm(s.mae.mean, s.mae.std), _pm(s.rmse.mean, s.rmse.std), str(n), str(s.n_failed)]
        if with_seeds:
            cells += [per_seed_cell(s.per_seed)]
        if with_mean:
            cells += [_pm(s.mean_baseline.mean, s.mean_baseline.std) if s.mean_baseline else ""]
        if with_paper:
            cells += [_paper_cell(s.paper, "mae"), _paper_cell(s.paper, "rmse")]
        rows.append(cells)
    return header, rows


def cycle_rows(cycles: list[CycleSummary], refs: dict[str, PaperReference],
               pooled: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
    keys = [k for k, _ in cycles[0].key.settings] if cycles else []
    with_seeds = any(c.per_seed for c in cycles)
    many = len({c.key.experiment for c in cycles}) > 1
    with_paper = any(c.paper is not None for c in cycles)
    with_mean = any(c.mean_baseline is not None for c in cycles)
    header = (["experiment"] if many else []) + ["dataset"] + _short_names(keys) + ["labeled", "MAE", "RMSE", "n"]
    if with_seeds:
        header += [per_seed_header(pooled)]
    if with_mean:
        header += [MEAN_COLUMN]
    if with_paper:
        header += [f"paper {_metric_names(refs)['mae']}"]
    rows = []
    for c in cycles:
        cells = ([c.key.experiment] if many else []) + [c.key.dataset] + [_show(v) for _, v in c.key.settings]
        cells += [str(c.n_labeled), _pm(c.mae.mean, c.mae.std), _pm(c.rmse.mean, c.rmse.std), str(c.mae.n)]
        if with_seeds:
            cells += [per_seed_cell(c.per_seed)]
        if with_mean:
            cells += [_pm(c.mean_baseline.mean, c.mean_baseline.std) if c.mean_baseline else ""]
        if with_paper:
            cells += [_paper_cell(c.paper, "mae")]
        rows.append(cells)
    return header, rows


def _p_value(p: float) -> str:
    if math.isnan(p):
        return "-"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def paired_rows(comparisons: list[Comparison], per_cycle: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and cells of a paired-comparison table: A − B of the MAE over the seeds both have."""
    many = len({c.experiment for c in comparisons}) > 1
    header = (["experiment"] if many else []) + ["dataset", "compared", "A", "B", "shared settings"]
    header += (["labeled"] if per_cycle else []) + ["n pairs", "mean A-B", "95% CI", "p", "test"]
    rows = []
    for c in comparisons:
        r = c.result
        compared = "vs Mean baseline" if c.varied == MEAN_BASELINE else c.varied.rsplit(".", 1)[-1]
        cells = ([c.experiment] if many else []) + [c.dataset, compared, _show(c.a), _show(c.b)]
        cells += [", ".join(f"{k.rsplit('.', 1)[-1]}={_show(v)}" for k, v in c.shared)]
        cells += ([str(c.n_labeled)] if per_cycle else []) + [str(r.n), _num(r.mean)]
        cells += ["-" if math.isnan(r.ci_low) else f"[{r.ci_low:.2f}, {r.ci_high:.2f}]", _p_value(r.p), r.test]
        rows.append(cells)
    return header, rows


def _numeric(header: list[str]) -> list[bool]:
    return [h in NUMERIC_COLUMNS or h.startswith("paper ") or h.endswith(" per seed") for h in header]


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    """A pipe table by pandas (``to_markdown``, i.e. tabulate), numbers right-aligned."""
    cells = pd.DataFrame([[c.replace("|", "\\|") for c in row] for row in rows], columns=header, dtype=object)
    align = ["right" if n else "left" for n in _numeric(header)]
    return cells.to_markdown(index=False, tablefmt="pipe", colalign=align, disable_numparse=True)


def _latex(header: list[str], rows: list[list[str]]) -> str:
    """A booktabs tabular by pandas (``to_latex``, escaped), ``±`` as ``$\\pm$``."""
    spec = "".join("r" if n else "l" for n in _numeric(header))
    text = pd.DataFrame(rows, columns=header, dtype=object).to_latex(index=False, column_format=spec, escape=True)
    return text.replace("±", r"$\pm$").rstrip("\n")


def csv_table(summaries: list[GroupSummary]) -> str:
    """Machine-readable final table: full-precision numbers, one column per quantity."""
    records = []
    for s in summaries:
        record = {"experiment": s.key.experiment, "method": s.key.method, "dataset": s.key.dataset}
        record |= {SETTING_PREFIX + k: v for k, v in s.key.settings}
        record |= {"n_labeled": s.n_labeled, "mae_mean": s.mae.mean, "mae_std": s.mae.std, "rmse_mean": s.rmse.mean,
                   "rmse_std": s.rmse.std, "n": s.n_ok, "failed": s.n_failed}
        if s.per_seed:
            record |= {"seeds": s.mae.n, "pooled_per_seed": ";".join(f"{_show(seed)}:{n}" for seed, n in s.per_seed)}
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
    pooled = tuple(pool_over) + pooled_keys(every_ref)
    summaries = summarize(results, refs, pooled)
    return csv_table(summaries) if fmt == "csv" else render(*table_rows(summaries, refs, pooled), fmt)


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


#: What ``--format csv --table T`` prints (one CSV each).
CSV_TABLES = ("final", "cycles", "paired")
PAIRED_TITLE = "Paired differences of the final MAE (A − B on the seeds both ran)"
PAIRED_CYCLE_TITLE = "Paired differences of the MAE at every cycle (AL-AC; same rule)"
CYCLE_TITLE = "MAE against labeled images (AL-AC, every cycle; mean ± std over trials)"


def cycles_csv(cycles: list[CycleSummary]) -> str:
    records = [{"experiment": c.key.experiment, "method": c.key.method, "dataset": c.key.dataset}
               | {SETTING_PREFIX + k: v for k, v in c.key.settings}
               | {"n_labeled": c.n_labeled, "mae_mean": c.mae.mean, "mae_std": c.mae.std, "rmse_mean": c.rmse.mean,
                  "rmse_std": c.rmse.std, "n": c.mae.n,
                  "mean_baseline_mae_mean": c.mean_baseline.mean if c.mean_baseline else None} for c in cycles]
    return pd.DataFrame.from_records(records).to_csv(index=False, lineterminator="\n") if records else "n_labeled\n"


def pooling_note(pooled: tuple[str, ...], summaries: list[GroupSummary]) -> list[str]:
    if not any(s.per_seed for s in summaries):
        return []
    return [f"pooled over {', '.join(dict.fromkeys(pooled))}: each seed's results averaged first, then mean ± std over "
            f"seeds (n = seeds; failed = trials of one {per_seed_header(pooled).split('s per')[0]} that failed)"]


def report_sections(results: ResultsSet, refs: dict[str, PaperReference] | None = None, pool_over: tuple[str, ...] = (),
                    extra_notes: list[str] | None = None) -> list[tuple[str, tuple[list[str], list[list[str]]] | list[str]]]:
    """The report's parts in order: (title, (header, rows)) tables, then ("notes", lines)."""
    refs = refs or {}
    summaries = summarize(results, refs, pool_over)
    cycles = summarize_cycles(results, refs, pool_over)
    comparisons = paired_comparisons(results, pool_over)
    final_pairs = [c for c in comparisons if c.n_labeled is None]
    cycle_pairs = [c for c in comparisons if c.n_labeled is not None]
    sections: list = [("Results (each trial's final cycle or stage; mean ± std over trials)", table_rows(summaries, refs, pool_over))]
    if cycles:
        sections.append((CYCLE_TITLE, cycle_rows(cycles, refs, pool_over)))
    if final_pairs:
        sections.append((PAIRED_TITLE, paired_rows(final_pairs)))
    if cycle_pairs:
        sections.append((PAIRED_CYCLE_TITLE, paired_rows(cycle_pairs, per_cycle=True)))
    rule = [f"paired tests: {TEST_RULE}; the test column names the one used"] if comparisons else []
    sections.append(("notes", pooling_note(pool_over, summaries) + rule + notes(summaries, refs, cycles) + list(extra_notes or [])))
    return sections


def report_text(results: ResultsSet, fmt: str = "markdown", refs: dict[str, PaperReference] | None = None,
                pool_over: tuple[str, ...] = (), extra_notes: list[str] | None = None, table: str = "final") -> str:
    """Everything printed to stdout: the final table, then (markdown/latex) the per-cycle table,
    the paired comparisons and notes. ``csv`` prints one table (``table``: final, cycles or
    paired), so the output stays one CSV."""
    refs = refs or {}
    if fmt == "csv":
        if table not in CSV_TABLES:
            raise ReportError(f"unknown table {table!r}; choose from {list(CSV_TABLES)}")
        if table == "cycles":
            return cycles_csv(summarize_cycles(results, refs, pool_over))
        if table == "paired":
            return paired_csv(paired_comparisons(results, pool_over))
        return csv_table(summarize(results, refs, pool_over))
    comment = "% " if fmt == "latex" else "- "
    heading = "% " if fmt == "latex" else "### "
    parts = []
    for n, (title, content) in enumerate(report_sections(results, refs, pool_over, extra_notes)):
        if title == "notes":
            if content:
                parts.append("\n".join(comment + line for line in content))
        elif n == 0:
            parts.append(render(*content, fmt))  # the main table first, as the sweep prints it
        else:
            parts.append(heading + title + "\n\n" + render(*content, fmt))
    return "\n\n".join(parts) + "\n"
