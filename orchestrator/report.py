"""``python -m orchestrator.report``: a results Parquet -> the papers' tables (and figures).

    python -m orchestrator.report results/alac_demo
    python -m orchestrator.report results/table2_alignment_sha --format latex --figures figs/
    python -m orchestrator.report results/table1_pssw_vs_random_sha results/table1_pssw_vs_random_shb
    python -m orchestrator.report results/table2_alignment_sha --paper configs/alac/table3_sota_sha.yaml

Table: one row per experiment, method, dataset and swept setting (``setting.*`` columns), from
each trial's final row (its largest ``cycle``): MAE and RMSE as mean ± sample std (ddof 1; "-"
when n = 1), ``n`` = trials that finished, ``failed`` = trials that did not (never dropped
silently; their errors are listed under the table), and the paper's numbers beside ours where
the experiment's config names a matching result (see :mod:`orchestrator.report_paper`) and the
run is at paper scale (a smoke or demo run is never set beside the paper's numbers). For AL-AC a
second table gives MAE against the number of labeled images (every cycle). ``--pool KEY`` (or a
config's ``paper.pool_over``) averages a swept setting away, e.g. UCF_CC_50's five folds.

Several RESULTS_DIRs render into one table (e.g. SHA and SHB halves of one paper table). A
directory without ``results.parquet`` whose sub-folders have one (a suite's storage folder)
reports all of them. ``--figures DIR`` writes PNGs (see :mod:`orchestrator.figures`).
Exit status 2 with a message naming the path or column on unreadable input.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.report_paper import PaperReference, PaperResult
from orchestrator.report_tables import (FORMATS, REQUIRED_COLUMNS, SETTING_PREFIX, CycleSummary, GroupSummary,
                                        ReportError, ResultsSet, load_results, paper_references, paper_scale_only,
                                        summarize, summarize_cycles)

__all__ = ["ReportError", "load_results", "main", "paper_references", "render", "render_table", "report_text",
           "summarize", "summarize_cycles"]


# -------------------------------------------------------------------------------------- rendering
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
    header = (["experiment"] if many else []) + ["method", "dataset"] + _short_names(keys) + ["labeled", "MAE", "RMSE", "n", "failed"]
    if with_paper:
        header += [f"paper {names['mae']}", f"paper {names['rmse']}"]
    rows = []
    for s in summaries:
        cells = ([s.key.experiment] if many else []) + [s.key.method, s.key.dataset]
        cells += [_show(v) for _, v in s.key.settings]
        cells += [_show(s.n_labeled), _pm(s.mae.mean, s.mae.std), _pm(s.rmse.mean, s.rmse.std), str(s.n_ok), str(s.n_failed)]
        if with_paper:
            cells += [_paper_cell(s.paper, "mae"), _paper_cell(s.paper, "rmse")]
        rows.append(cells)
    return header, rows


def cycle_rows(cycles: list[CycleSummary], refs: dict[str, PaperReference]) -> tuple[list[str], list[list[str]]]:
    keys = [k for k, _ in cycles[0].key.settings] if cycles else []
    many = len({c.key.experiment for c in cycles}) > 1
    with_paper = any(c.paper is not None for c in cycles)
    header = (["experiment"] if many else []) + ["dataset"] + _short_names(keys) + ["labeled", "MAE", "RMSE", "n"]
    if with_paper:
        header += [f"paper {_metric_names(refs)['mae']}"]
    rows = []
    for c in cycles:
        cells = ([c.key.experiment] if many else []) + [c.key.dataset] + [_show(v) for _, v in c.key.settings]
        cells += [str(c.n_labeled), _pm(c.mae.mean, c.mae.std), _pm(c.rmse.mean, c.rmse.std), str(c.mae.n)]
        if with_paper:
            cells += [_paper_cell(c.paper, "mae")]
        rows.append(cells)
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    numeric = {"labeled", "MAE", "RMSE", "n", "failed"} | {h for h in header if h.startswith("paper ")}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" if h in numeric else "---" for h in header) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_cell(text: str) -> str:
    escaped = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    return escaped.replace("±", r"$\pm$")


def _latex(header: list[str], rows: list[list[str]]) -> str:
    numeric = {"labeled", "MAE", "RMSE", "n", "failed"} | {h for h in header if h.startswith("paper ")}
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
                           f"{ref.metric_names['mae']} {_paper_cell(r, 'mae') or '-'}, {ref.metric_names['rmse']} {_paper_cell(r, 'rmse') or '-'}")
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", help="folder(s) holding results.parquet")
    parser.add_argument("--format", choices=FORMATS, default="markdown")
    parser.add_argument("--figures", default=None, metavar="DIR", help="write PNG figures here")
    parser.add_argument("--paper", default=None, metavar="CONFIG",
                        help="take the paper's numbers from this config's 'paper' section instead")
    parser.add_argument("--pool", action="append", default=[], metavar="KEY",
                        help="average over this swept setting instead of one row per value (repeatable)")
    args = parser.parse_args(argv)
    try:
        results = load_results(args.results_dirs)
        every_ref = paper_references(results.configs, args.paper)
        refs, not_compared = paper_scale_only(every_ref, results)
        pool = tuple(args.pool) + pooled_keys(every_ref)  # pooling holds at every scale
        sys.stdout.write(report_text(results, args.format, refs, pool, not_compared))
        if args.figures is not None:
            from orchestrator.figures import write_figures  # matplotlib only when asked for

            cycles = summarize_cycles(results, refs, pool)
            for line in write_figures(results, cycles, args.figures):
                print(line, file=sys.stderr if args.format == "csv" else sys.stdout)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
