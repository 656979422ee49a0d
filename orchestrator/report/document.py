"""The report file: ``report.md`` and a self-contained ``report.html`` (figures embedded as base64
PNG) with what produced the results, the paper-style table (baselines as rows or a column beside
the methods), the per-cycle learning curves, the paired comparisons, the figures, failed trials
with their errors and the notes. Written atomically (:mod:`orchestrator.core.files`).

Both files are built from one list of blocks, so they hold the same content; the markdown
references the PNGs by relative path, the HTML carries them inline.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import os
import shlex
from pathlib import Path

import pandas as pd

from orchestrator.core.files import write_text_atomic
from orchestrator.report.paper import PaperReference
from orchestrator.report.render import _numeric, render, report_sections
from orchestrator.report.tables import SETTING_PREFIX, ResultsSet, final_rows, summarize_cycles

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
         "th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}th{background:#f0f0f0}"
         "td.num{text-align:right;font-variant-numeric:tabular-nums}"
         "img{max-width:100%;border:1px solid #ddd}code{background:#f4f4f4;padding:0 0.2em}")


def config_hash(config: dict) -> str:
    """First 12 hex digits of the SHA-256 of the resolved config (keys sorted), as in experiment.json."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _distinct(frame: pd.DataFrame, column: str) -> list[str]:
    if column not in frame:
        return []
    return [str(v) for v in dict.fromkeys(frame[column].dropna()) if str(v).strip()]


def provenance(results: ResultsSet, argv: list[str] | None) -> list[str]:
    """What produced this report: the report command, each experiment's sweep command (a
    ``command`` row column or config key, when recorded), config hash, scale and code version."""
    frame = results.frame
    lines = [f"report command: `{shlex.join(['python', '-m', 'orchestrator.report', *(argv or [])])}`",
             f"written: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}"]
    for name in dict.fromkeys(frame["experiment"].astype(str)):
        rows = frame[frame["experiment"].astype(str) == name]
        config = results.configs.get(name)
        commands = _distinct(rows, "command") or ([str(config["command"])] if config and config.get("command") else [])
        parts = [f"experiment `{name}`",
                 f"config hash {config_hash(config)} (experiment.json)" if config else "config: no experiment.json",
                 "scale " + (", ".join(_distinct(rows, "scale")) or "unknown"),
                 "code version " + (", ".join(_distinct(rows, "code_version")) or "not recorded"),
                 "sweep command " + (", ".join(f"`{c}`" for c in commands) if commands else "not recorded")]
        lines.append("; ".join(parts))
    return lines


def failed_trials(results: ResultsSet) -> tuple[list[str], list[list[str]]] | None:
    """One row per failed trial (its final row): experiment, trial, seed, settings, cycle, the error's first line."""
    final = final_rows(results.frame)
    failed = final[final["status"] != "ok"]
    if failed.empty:
        return None
    settings = [c for c in failed.columns if c.startswith(SETTING_PREFIX)]
    rows = []
    for _, row in failed.iterrows():
        shown = ", ".join(f"{c[len(SETTING_PREFIX):].rsplit('.', 1)[-1]}={row[c]}" for c in settings if pd.notna(row[c]))
        error = str(row.get("error") or "").strip()
        rows.append([str(row["experiment"]), str(row["trial_id"]), str(row.get("seed", "")), shown, str(row["cycle"]),
                     error.splitlines()[0] if error else "(no message)"])
    return ["experiment", "trial", "seed", "settings", "cycle", "error"], rows


def report_blocks(results: ResultsSet, refs: dict[str, PaperReference], pool_over: tuple[str, ...],
                  figures: list[tuple[str, Path | None, str]], argv: list[str] | None,
                  extra_notes: list[str] | None = None) -> list[tuple[str, object]]:
    """The report as blocks: ("h1"/"h2", text), ("list", lines), ("table", (header, rows)), ("figure", (path, caption))."""
    experiments = ", ".join(dict.fromkeys(results.frame["experiment"].astype(str)))
    blocks: list[tuple[str, object]] = [("h1", f"Report: {experiments}"), ("list", provenance(results, argv))]
    sections = report_sections(results, refs, pool_over, extra_notes)
    note_lines: list[str] = []
    for title, content in sections:
        if title == "notes":
            note_lines = list(content)
            continue
        blocks += [("h2", title), ("table", content)]
    made = [(path, caption) for _, path, caption in figures if path is not None]
    if made:
        blocks.append(("h2", "Figures"))
        blocks += [("figure", item) for item in made]
    skipped = [f"{name}: {why}" for name, path, why in figures if path is None]
    failed = failed_trials(results)
    blocks.append(("h2", "Failed trials"))
    blocks.append(("table", failed) if failed else ("list", ["none: every trial finished"]))
    if note_lines or skipped:
        blocks += [("h2", "Notes"), ("list", note_lines + [f"figure skipped: {s}" for s in skipped])]
    return blocks


def to_markdown(blocks: list[tuple[str, object]], base: Path) -> str:
    out = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + str(content))
        elif kind == "list":
            out.append("\n".join(f"- {line}" for line in content))
        elif kind == "table":
            out.append(render(*content, "markdown"))
        elif kind == "figure":
            path, caption = content
            out.append(f"![{caption}]({Path(os.path.relpath(path, base)).as_posix()})\n\n*{caption}*")
    return "\n\n".join(out) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    numeric = _numeric(header)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{' class=num' if n else ''}>{html.escape(c)}</td>" for c, n in zip(row, numeric))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _inline(text: str) -> str:
    """``code`` spans of the markdown lines as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[tuple[str, object]]) -> str:
    title = next((str(c) for k, c in blocks if k == "h1"), "Report")
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body>"]
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{html.escape(str(content))}</{kind}>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline(line)}</li>" for line in content) + "</ul>")
        elif kind == "table":
            out.append(_html_table(*content))
        elif kind == "figure":
            path, caption = content
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            out.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption, quote=True)}'>"
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return "\n".join(out) + "\n</body></html>\n"


def write_report(results: ResultsSet, refs: dict[str, PaperReference], pool_over: tuple[str, ...], out_dir: str | Path,
                 figures_dir: str | Path | None = None, argv: list[str] | None = None,
                 extra_notes: list[str] | None = None) -> tuple[Path, Path, list[str]]:
    """Write the figures (``figures_dir``, default ``out_dir/figures``), ``report.md`` and
    ``report.html`` into ``out_dir``; returns both paths and the figure lines."""
    from orchestrator.report.figures import make_figures  # matplotlib only when writing figures

    out = Path(out_dir)
    figures = make_figures(results, summarize_cycles(results, refs, pool_over), figures_dir or out / "figures")
    lines = [f"figure: {path}" if path else f"figure skipped: {name} ({why})" for name, path, why in figures]
    blocks = report_blocks(results, refs, pool_over, figures, argv, extra_notes)
    markdown = write_text_atomic(out / MARKDOWN_FILE, to_markdown(blocks, out))
    page = write_text_atomic(out / HTML_FILE, to_html(blocks))
    return markdown, page, lines


def write_folder_report(results_dir: str | Path, argv: list[str] | None = None) -> tuple[Path, Path, list[str]]:
    """:func:`write_report` for one results folder, as ``python -m orchestrator.report DIR`` does
    (the paper's numbers from its experiment.json, at paper scale only; its pooled folds): for
    the sweep's closing step."""
    from orchestrator.report.render import pooled_keys
    from orchestrator.report.tables import load_results, paper_references, paper_scale_only

    results = load_results([results_dir])
    every_ref = paper_references(results.configs)
    refs, not_compared = paper_scale_only(every_ref, results)
    return write_report(results, refs, pooled_keys(every_ref), results_dir, None, argv or [str(results_dir)], not_compared)


__all__ = ["HTML_FILE", "MARKDOWN_FILE", "config_hash", "failed_trials", "provenance", "report_blocks", "to_html",
           "to_markdown", "write_folder_report", "write_report"]
