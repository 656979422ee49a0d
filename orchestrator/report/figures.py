"""The papers' figures from a results set, as PNG files (matplotlib, Agg backend).

Imported only when ``python -m orchestrator.report ... --figures DIR`` asks for figures.

* ``mae_vs_budget.png`` (AL-AC Fig. 4): mean MAE against the number of labeled images, one line
  per setting with a ± 1 std band over trials, the paper's numbers as crosses where the config
  names them; one panel per experiment and dataset.
* ``partitions.png`` (AL-AC Fig. 3): the histogram of the pool's predicted counts at one
  selection, the inner Jenks breaks as vertical lines and the partitions that received a pick
  shaded (with the number of picks).
* ``density_examples.png`` (AL-AC Fig. 5): image / true density / predicted density with
  their counts, from ``RESULTS_DIR/examples/<trial_id>.npz``.

A figure whose data is absent is skipped with a printed note. Files are written atomically
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
from orchestrator.report.tables import CycleSummary, ResultsSet  # noqa: E402

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


def mae_vs_budget(cycles: list[CycleSummary], path: Path) -> Path | None:
    """AL-AC Fig. 4 from the per-cycle summaries; ``None`` when there are none."""
    panels: dict[tuple[str, str], dict[tuple, list[CycleSummary]]] = defaultdict(lambda: defaultdict(list))
    for c in cycles:
        panels[(c.key.experiment, c.key.dataset)][c.key.settings].append(c)
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, ((experiment, dataset), lines) in zip(axes[0], panels.items()):
        for n, (settings, points) in enumerate(lines.items()):
            points = sorted(points, key=lambda c: c.n_labeled)
            x = np.array([c.n_labeled for c in points], dtype=float)
            mean = np.array([c.mae.mean for c in points])
            std = np.nan_to_num(np.array([c.mae.std for c in points]))
            color = f"C{n % 10}"
            ax.plot(x, mean, marker="o", color=color, label=_label(settings))
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
        ax.set_xlabel("labeled images")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("MAE (mean ± std over trials)")
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


def partitions(frame: pd.DataFrame, path: Path) -> Path | None:
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
    n_partitions = len(breaks) + 1
    member = np.searchsorted(breaks, counts, side="left")  # partition of each pool image
    picks = np.bincount(np.asarray(picked, dtype=np.int64), minlength=n_partitions)[:n_partitions]
    colors = [f"C{k % 10}" if picks[k] else "0.75" for k in range(n_partitions)]
    labels = [f"partition {k + 1}: {_plural(int(picks[k]), 'pick')}" for k in range(n_partitions)]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    ax.hist([counts[member == k] for k in range(n_partitions)], bins=bins, stacked=True, color=colors,
            edgecolor="white", linewidth=0.5, label=labels)
    for n, b in enumerate(breaks):
        ax.axvline(b, color="black", linestyle="--", linewidth=1.0, label="Jenks breaks" if n == 0 else None)
    strategy = row["strategy"] if "strategy" in row.index else ""
    seed = row["seed"] if "seed" in row.index else "?"
    ax.set_title(f"{row['dataset']}, {strategy}, seed {seed}, cycle {row['cycle']}: "
                 f"{_plural(counts.size, 'unlabeled image')}, {_plural(n_partitions, 'partition')}, "
                 f"{_plural(len(picked), 'pick')}", fontsize=10)
    ax.set_xlabel("predicted count (people)")
    ax.set_ylabel("unlabeled images")
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
           ("partitions.png", "the pool's predicted counts, Jenks partitions and picks of one selection (AL-AC Fig. 3)",
            "no AL-AC selection by partitions with the pool's predicted counts"),
           ("density_examples.png", "predicted vs true density of test images (AL-AC Fig. 5)", "no examples/*.npz"))


def make_figures(results: ResultsSet, cycles: list[CycleSummary], out_dir: str | Path) -> list[tuple[str, Path | None, str]]:
    """Write every figure whose data exists into ``out_dir``: (file name, path or None, caption or why skipped)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = [mae_vs_budget(cycles, out / FIGURES[0][0]), partitions(results.frame, out / FIGURES[1][0]),
            density_examples(results.dirs, out / FIGURES[2][0])]
    return [(name, path, caption if path else why) for (name, caption, why), path in zip(FIGURES, made)]


def write_figures(results: ResultsSet, cycles: list[CycleSummary], out_dir: str | Path) -> list[str]:
    """Write every figure whose data exists into ``out_dir``; one line per figure (path or why skipped)."""
    return [f"figure: {path}" if path else f"figure skipped: {name} ({why})"
            for name, path, why in make_figures(results, cycles, out_dir)]


__all__ = ["FIGURES", "density_examples", "mae_vs_budget", "make_figures", "partitions", "pick_selection", "save_png_atomic",
           "write_figures"]
