"""Dataset inspection: per split, image and point statistics and every problem found.

Problems are dicts ``{"severity", "split", "item", "message"}``. ``error`` means an item cannot
be used (unreadable image, missing or malformed annotation); ``warning`` means it was handled
(points outside the image were dropped from the ground truth).
"""

from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm

from .base import DatasetError
from .registry import dataset_splits, open_dataset


def _problem(severity: str, split: str, item: str | None, message: str) -> dict:
    return {"severity": severity, "split": split, "item": item, "message": message}


def inspect_split(name: str, root, split: str, *, decode: bool = True, progress: bool = True,
                  **options) -> tuple[dict, list[dict]]:
    """Statistics and problems of one split. Never raises for per-item problems."""
    dataset = open_dataset(name, root, split, strict=False, **options)
    problems = [_problem("error", split, None, p) for p in dataset.problems]
    counts, dropped = [], 0
    for item in tqdm(dataset, desc=f"{name}/{split}", unit="img", disable=not progress, file=sys.stderr):
        try:
            if decode:
                item.load_image()
            points = item.points
        except DatasetError as e:
            problems.append(_problem("error", split, item.id, str(e)))
            continue
        outside = item.outside_points
        if len(outside):
            dropped += len(outside)
            where = ", ".join(f"({x:.1f}, {y:.1f})" for x, y in outside[:5])
            h, w = item.size
            problems.append(_problem(
                "warning", split, item.id,
                f"{len(outside)} point(s) outside the {w}x{h} image at {where}: dropped from the ground truth",
            ))
        counts.append(len(points))
    arr = np.asarray(counts, dtype=np.int64)
    stats = {
        "images": len(dataset),
        "readable": int(arr.size),
        "points": int(arr.sum()),
        "min_points": int(arr.min()) if arr.size else None,
        "mean_points": float(arr.mean()) if arr.size else None,
        "max_points": int(arr.max()) if arr.size else None,
        "dropped_outside_points": dropped,
    }
    return stats, problems


def inspect_dataset(name: str, root, splits=None, *, decode: bool = True, progress: bool = True,
                    **options) -> dict:
    """``{"dataset", "root", "splits": {split: stats}, "problems": [...]}`` for the given splits
    (default: all of the dataset's splits). Layout errors raise :class:`DatasetError`."""
    splits = list(splits or dataset_splits(name, root))
    report = {"dataset": name, "root": str(root) if root is not None else None, "splits": {}, "problems": []}
    for split in splits:
        stats, problems = inspect_split(name, root, split, decode=decode, progress=progress, **options)
        report["splits"][split] = stats
        report["problems"].extend(problems)
    return report


def has_errors(report: dict) -> bool:
    return any(p["severity"] == "error" for p in report["problems"])


def format_report(report: dict) -> str:
    """The human-readable table the CLI prints."""
    lines = [f"dataset {report['dataset']}" + (f"  root {report['root']}" if report["root"] else "")]
    lines.append(f"{'split':<10}{'images':>8}{'points':>10}{'min':>8}{'mean':>10}{'max':>8}{'dropped':>9}")
    for split, s in report["splits"].items():
        mean = f"{s['mean_points']:.1f}" if s["mean_points"] is not None else "-"
        lines.append(
            f"{split:<10}{s['images']:>8}{s['points']:>10}{s['min_points'] if s['min_points'] is not None else '-':>8}"
            f"{mean:>10}{s['max_points'] if s['max_points'] is not None else '-':>8}{s['dropped_outside_points']:>9}"
        )
    if report["problems"]:
        lines.append(f"{len(report['problems'])} problem(s):")
        lines += [f"  [{p['severity']}] {p['split']}/{p['item'] or '-'}: {p['message']}" for p in report["problems"]]
    else:
        lines.append("no problems found")
    return "\n".join(lines)
