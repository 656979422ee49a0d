"""The papers' figures from a results set, as PNG files (matplotlib, Agg backend).

Imported only when ``python -m orchestrator.report ... --figures DIR`` asks for figures.

* ``mae_vs_budget.png`` (AL-AC Fig. 4): mean MAE against the number of labeled images, one line
  per setting with a ± 1 std band over trials, the paper's numbers as crosses where the config
  names them; one panel per experiment and dataset.
* ``mae_vs_points.png``: MAE against labeled *points* (the annotation cost: heads clicked), one
  faint dot per trial and cycle, the mean over trials with ± 1 std bars on both axes.
* ``partitions.png`` (AL-AC Fig. 3): the histogram of the pool's predicted counts at one
  selection, the inner Jenks breaks as vertical lines and the partitions that received a pick
  shaded (with the number of picks).
* ``density_examples.png`` (AL-AC Fig. 5): image / true density / predicted density with
  their counts, from ``RESULTS_DIR/examples/<trial_id>.npz``.

Each strategy has one colour in every figure (:data:`STRATEGY_COLORS`; other settings of the same
strategy differ by marker). A figure whose data is absent is skipped with a printed note. Files are written atomically
(temporary file, then rename). :func:`make_figures` also returns each figure's caption, for the
report file (:mod:`orchestrator.report.document`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from orchestrator.core.files import write_atomic  # noqa: E402
from orchestrator.report.tables import SETTING_PREFIX, CycleSummary, ResultsSet  # noqa: E402

MAX_HISTOGRAM_BINS = 60
MAX_EXAMPLES = 4


def save_png_atomic(fig, path: Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` through a temporary file and a rename; closes ``fig``."""
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _label(settings: tuple) -> str:
    shown = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in settings if v is not None]
    return ", ".join(shown) or "all trials"


#: One colour per strategy in every figure of every report (matplotlib's tab10 colours).
STRATEGY_COLORS = {"pssw": "tab:blue", "random": "tab:orange", "rs_baseline": "tab:green", "gdsim": "tab:red",
                   "pcsw": "tab:purple", "none": "tab:cyan", "mean": "tab:gray", "pprior": "tab:brown"}
OTHER_COLORS = ("tab:pink", "tab:olive", "black", "darkgoldenrod", "teal", "indigo")
MARKERS = ("o", "s", "^", "D", "v", "P")
MAE_AXIS = "MAE (people per image; mean ± std over trials)"


def strategy_of(settings: tuple) -> str:
    """What a line's colour stands for: its ``*.strategy`` (else ``*.baseline``) setting, else
    the whole setting label."""
    values = dict(settings)
    for suffix in ("strategy", "baseline"):
        found = [v for k, v in values.items() if k.rsplit(".", 1)[-1] == suffix and v is not None]
        if found:
            return str(found[0])
    return _label(settings)


def color_map(strategies) -> dict[str, str]:
    """Strategy -> colour: the fixed :data:`STRATEGY_COLORS`, then the others in sorted order."""
    unknown = sorted({str(s) for s in strategies} - set(STRATEGY_COLORS))
    return {**STRATEGY_COLORS, **{s: OTHER_COLORS[i % len(OTHER_COLORS)] for i, s in enumerate(unknown)}}


def _styles(lines, colors: dict[str, str]) -> dict[tuple, tuple[str, str]]:
    """settings -> (colour of its strategy, marker telling its other settings apart)."""
    seen: dict[str, int] = defaultdict(int)
    out = {}
    for settings in lines:
        strategy = strategy_of(settings)
        out[settings] = (colors.get(strategy, "black"), MARKERS[seen[strategy] % len(MARKERS)])
        seen[strategy] += 1
    return out


def _panels(cycles: list[CycleSummary]) -> dict[tuple[str, str], dict[tuple, list[CycleSummary]]]:
    panels: dict[tuple[str, str], dict[tuple, list[CycleSummary]]] = defaultdict(lambda: defaultdict(list))
    for c in cycles:
        panels[(c.key.experiment, c.key.dataset)][c.key.settings].append(c)
    return panels


def mae_vs_budget(cycles: list[CycleSummary], path: Path, colors: dict[str, str] | None = None) -> Path | None:
    """AL-AC Fig. 4 from the per-cycle summaries; ``None`` when there are none."""
    panels = _panels(cycles)
    if not panels:
        return None
    colors = colors or color_map(strategy_of(c.key.settings) for c in cycles)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, ((experiment, dataset), lines) in zip(axes[0], panels.items()):
        styles = _styles(lines, colors)
        for settings, points in lines.items():
            points = sorted(points, key=lambda c: c.n_labeled)
            x = np.array([c.n_labeled for c in points], dtype=float)
            mean = np.array([c.mae.mean for c in points])
            std = np.nan_to_num(np.array([c.mae.std for c in points]))
            color, marker = styles[settings]
            ax.plot(x, mean, marker=marker, color=color, label=_label(settings))
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
            baseline = [(c.n_labeled, c.mean_baseline.mean) for c in points if c.mean_baseline is not None]
            if baseline:
                bx, by = zip(*baseline)
                ax.plot(bx, by, linestyle="--", color=color, alpha=0.8, label=f"Mean baseline ({_label(settings)})")
            paper = [(c.n_labeled, c.paper.mae) for c in points if c.paper is not None and c.paper.mae is not None]
            if paper:
                px, py = zip(*paper)
                ax.plot(px, py, linestyle="none", marker="x", markersize=8, color=color, label=f"paper ({_label(settings)})")
        ax.set_title(f"{experiment} — {dataset}", fontsize=10)
        ax.set_xlabel("labeled images (count)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(MAE_AXIS)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_png_atomic(fig, path)


def _points_of(frame: pd.DataFrame, c: CycleSummary) -> tuple[np.ndarray, np.ndarray]:
    """Per seed (mean over pooled folds): labeled points and MAE of the ok AL-AC rows of ``c``."""
    needed = {"labeled_points", "n_labeled", "mae", "seed", "experiment", "dataset"}
    if not needed <= set(frame.columns):
        return np.array([]), np.array([])
    rows = frame[(frame["experiment"].astype(str) == c.key.experiment) & (frame["dataset"].astype(str) == c.key.dataset)
                 & (frame["status"] == "ok") & (pd.to_numeric(frame["n_labeled"], errors="coerce") == c.n_labeled)]
    for key, value in c.key.settings:
        column = SETTING_PREFIX + key
        if column in rows:
            rows = rows[rows[column].isna()] if value is None else rows[rows[column] == value]
    per_seed = rows.assign(labeled_points=pd.to_numeric(rows["labeled_points"], errors="coerce"),
                           mae=pd.to_numeric(rows["mae"], errors="coerce")).groupby("seed")[["labeled_points", "mae"]].mean()
    per_seed = per_seed.dropna()
    return per_seed["labeled_points"].to_numpy(float), per_seed["mae"].to_numpy(float)


def mae_vs_points(cycles: list[CycleSummary], frame: pd.DataFrame, path: Path,
                  colors: dict[str, str] | None = None) -> Path | None:
    """MAE against the annotation cost (labeled *points*, i.e. heads clicked): one dot per trial
    and cycle, and per setting the mean over trials with ± 1 std bars on both axes. ``None``
    without AL-AC cycles that have labeled points."""
    panels = _panels(cycles)
    data = {(panel, settings): [_points_of(frame, c) for c in sorted(points, key=lambda c: c.n_labeled)]
            for panel, lines in panels.items() for settings, points in lines.items()}
    if not any(x.size for series in data.values() for x, _ in series):
        return None
    colors = colors or color_map(strategy_of(c.key.settings) for c in cycles)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (panel, lines) in zip(axes[0], panels.items()):
        styles = _styles(lines, colors)
        for settings in lines:
            color, marker = styles[settings]
            series = [(x, y) for x, y in data[(panel, settings)] if x.size]
            for x, y in series:
                ax.scatter(x, y, color=color, marker=marker, s=14, alpha=0.35, linewidths=0)
            mx, my = np.array([x.mean() for x, _ in series]), np.array([y.mean() for _, y in series])
            sx = np.array([x.std(ddof=1) if x.size > 1 else 0.0 for x, _ in series])
            sy = np.array([y.std(ddof=1) if y.size > 1 else 0.0 for _, y in series])
            ax.errorbar(mx, my, xerr=sx, yerr=sy, color=color, marker=marker, capsize=3, label=_label(settings))
        ax.set_title(f"{panel[0]} — {panel[1]}", fontsize=10)
        ax.set_xlabel("labeled points (annotated heads; mean ± std over trials, dots: trials)")
        ax.set_ylabel(MAE_AXIS)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_png_atomic(fig, path)


def _json_list(value) -> list:
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return []
    return parsed if isinstance(parsed, list) else []


def pick_selection(frame: pd.DataFrame) -> pd.Series | None:
    """The row of one selection to draw: an ok AL-AC row with the pool's predicted counts and
    partitioned picks (partition >= 0), preferring a selection with Jenks breaks, PSSW, then the
    first experiment, the smallest seed and the earliest cycle."""
    needed = {"pool_predicted_counts", "partition_breaks", "selected_partitions"}
    if not needed <= set(frame.columns):
        return None
    rows = frame[(frame["method"] == "alac") & (frame["status"] == "ok")]
    usable = rows[[bool(_json_list(c)) and any(int(p) >= 0 for p in _json_list(s))
                   for c, s in zip(rows["pool_predicted_counts"], rows["selected_partitions"])]]
    if usable.empty:
        return None
    no_breaks = [not _json_list(b) for b in usable["partition_breaks"]]
    not_pssw = (usable["strategy"] != "pssw") if "strategy" in usable else pd.Series(False, index=usable.index)
    ordered = usable.assign(_no_breaks=no_breaks, _not_pssw=not_pssw.astype(int), _order=np.arange(len(usable)))
    sort = ["_no_breaks", "_not_pssw"] + [c for c in ("seed", "cycle") if c in ordered] + ["_order"]
    return ordered.sort_values(sort, kind="stable").iloc[0]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def partitions(frame: pd.DataFrame, path: Path, colors: dict[str, str] | None = None) -> Path | None:
    """AL-AC Fig. 3 for one selection (see :func:`pick_selection`); ``None`` without data.

    Bars are stacked by partition (partition ``k`` holds ``b_k < count <= b_{k+1}``, jenkspy's
    convention): partitions that received picks in colour, the others grey, each labelled with
    its number of picks; the inner breaks are dashed lines."""
    row = pick_selection(frame)
    if row is None:
        return None
    counts = np.asarray(_json_list(row["pool_predicted_counts"]), dtype=np.float64)
    breaks = np.asarray(_json_list(row["partition_breaks"]), dtype=np.float64)
    picked = [int(p) for p in _json_list(row["selected_partitions"]) if int(p) >= 0]
    bins = np.histogram_bin_edges(counts, bins="auto")
    if len(bins) - 1 > MAX_HISTOGRAM_BINS:
        bins = np.linspace(counts.min(), counts.max(), MAX_HISTOGRAM_BINS + 1)
    inner = breaks[(breaks > bins[0]) & (breaks < bins[-1])]
    bins = np.union1d(bins, inner)  # the breaks are bin edges too: no bar straddles two partitions
    n_partitions = len(breaks) + 1
    member = np.searchsorted(breaks, counts, side="left")  # partition of each pool image
    picks = np.bincount(np.asarray(picked, dtype=np.int64), minlength=n_partitions)[:n_partitions]
    strategy = str(row["strategy"]) if "strategy" in row.index and pd.notna(row["strategy"]) else ""
    base = matplotlib.colors.to_rgb((colors or color_map([strategy])).get(strategy, "tab:blue"))
    # picked partitions in the strategy's colour (alternately lighter, so neighbours part), others grey
    tint = [tuple(0.55 * c + 0.45 for c in base), base]
    colors = [tint[k % 2] if picks[k] else ("0.72", "0.82")[k % 2] for k in range(n_partitions)]
    labels = [f"partition {k + 1}: {_plural(int(picks[k]), 'pick')}" for k in range(n_partitions)]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    ax.hist([counts[member == k] for k in range(n_partitions)], bins=bins, stacked=True, color=colors,
            edgecolor="white", linewidth=0.5, label=labels)
    for n, b in enumerate(breaks):
        ax.axvline(b, color="black", linestyle="--", linewidth=1.0, label="Jenks breaks" if n == 0 else None)
    seed = row["seed"] if "seed" in row.index else "?"
    ax.set_title(f"{row['dataset']}, {strategy}, seed {seed}, cycle {row['cycle']}: "
                 f"{_plural(counts.size, 'unlabeled image')}, {_plural(n_partitions, 'partition')}, "
                 f"{_plural(len(picked), 'pick')}", fontsize=10)
    ax.set_xlabel("predicted count (people per image)")
    ax.set_ylabel("unlabeled pool images (count)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="upper right", ncols=2 if n_partitions > 6 else 1)
    return save_png_atomic(fig, path)


def _examples_file(dirs: tuple[Path, ...]) -> Path | None:
    for directory in dirs:
        files = sorted((directory / "examples").glob("*.npz"))
        if files:
            return files[0]
    return None


def density_examples(dirs: tuple[Path, ...], path: Path) -> Path | None:
    """AL-AC Fig. 5 from the first ``examples/<trial_id>.npz``; ``None`` when there is none."""
    source = _examples_file(dirs)
    if source is None:
        return None
    with np.load(source, allow_pickle=False) as data:
        ids = [str(i) for i in data["ids"]][:MAX_EXAMPLES]
        panels = [(data[f"image_{i}"], data[f"target_{i}"], data[f"predicted_{i}"]) for i in range(len(ids))]
    if not panels:
        return None
    aspect = panels[0][0].shape[0] / max(1, panels[0][0].shape[1])  # height / width of the first image
    fig, axes = plt.subplots(len(panels), 3, figsize=(10, (10 / 3 * aspect + 0.5) * len(panels)), squeeze=False,
                             layout="constrained")
    for row, (item_id, (image, target, predicted)) in zip(axes, zip(ids, panels)):
        vmax = max(float(target.max()), float(predicted.max()), 1e-6)
        row[0].imshow(image)
        row[0].set_title(f"{item_id}", fontsize=9)
        row[1].imshow(target, cmap="jet", vmin=0, vmax=vmax)
        row[1].set_title(f"true density, C: {target.sum():.0f}", fontsize=9)
        row[2].imshow(np.maximum(predicted, 0), cmap="jet", vmin=0, vmax=vmax)
        row[2].set_title(f"predicted, C: {predicted.sum():.1f}", fontsize=9)
        for ax in row:
            ax.set_axis_off()
    fig.suptitle(f"predicted vs true density ({source.stem})", fontsize=10)
    return save_png_atomic(fig, path)


#: The figures in report order: file name, what it shows, why it may be missing.
FIGURES = (("mae_vs_budget.png", "MAE against labeled images (AL-AC Fig. 4)", "no AL-AC cycles with results"),
           ("mae_vs_points.png", "MAE against labeled points, the annotation cost", "no AL-AC cycles with labeled points"),
           ("partitions.png", "the pool's predicted counts, Jenks partitions and picks of one selection (AL-AC Fig. 3)",
            "no AL-AC selection by partitions with the pool's predicted counts"),
           ("density_examples.png", "predicted vs true density of test images (AL-AC Fig. 5)", "no examples/*.npz"))


def make_figures(results: ResultsSet, cycles: list[CycleSummary], out_dir: str | Path) -> list[tuple[str, Path | None, str]]:
    """Write every figure whose data exists into ``out_dir``: (file name, path or None, caption or why skipped)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    strategies = [strategy_of(c.key.settings) for c in cycles]
    if "strategy" in results.frame:
        strategies += [str(v) for v in results.frame["strategy"].dropna().unique()]
    colors = color_map(strategies)  # the same strategy has the same colour in every figure
    made = [mae_vs_budget(cycles, out / FIGURES[0][0], colors), mae_vs_points(cycles, results.frame, out / FIGURES[1][0], colors),
            partitions(results.frame, out / FIGURES[2][0], colors), density_examples(results.dirs, out / FIGURES[3][0])]
    return [(name, path, caption if path else why) for (name, caption, why), path in zip(FIGURES, made)]


def write_figures(results: ResultsSet, cycles: list[CycleSummary], out_dir: str | Path) -> list[str]:
    """Write every figure whose data exists into ``out_dir``; one line per figure (path or why skipped)."""
    return [f"figure: {path}" if path else f"figure skipped: {name} ({why})"
            for name, path, why in make_figures(results, cycles, out_dir)]


__all__ = ["FIGURES", "STRATEGY_COLORS", "color_map", "density_examples", "mae_vs_budget", "mae_vs_points", "make_figures",
           "partitions", "pick_selection", "save_png_atomic", "strategy_of", "write_figures"]
