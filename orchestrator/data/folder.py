"""The ``folder`` dataset: a user's own images with one CSV or JSON points file per image.

Layout: ``ROOT/<stem>.jpg|.jpeg|.png|...`` with, beside each image, ``<stem>.csv`` or
``<stem>.json``. If ``ROOT/train/`` and ``ROOT/test/`` exist they are the splits; otherwise the
only split is ``all``.

* CSV: one point per row, ``x,y`` (x = column, y = row, pixels); a header row naming ``x`` and
  ``y`` is optional; extra columns are ignored; an empty file is 0 points.
* JSON: ``{"points": [[x, y], ...]}``, a bare list ``[[x, y], ...]``, or a list of
  ``{"x": .., "y": ..}`` objects.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .base import DatasetError, as_points, require_dir
from .files import list_images, paired_items


def csv_points(path: Path) -> np.ndarray:
    """Points of a CSV annotation (see the module docstring)."""
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"unreadable CSV annotation {path}: {e}") from e
    xi, yi = 0, 1
    if rows:
        header = [c.strip().lower() for c in rows[0]]
        if "x" in header and "y" in header:
            xi, yi = header.index("x"), header.index("y")
            rows = rows[1:]
    values = []
    for row in rows:
        try:
            values.append((float(row[xi]), float(row[yi])))
        except (IndexError, ValueError) as e:
            raise DatasetError(f"{path}: row {row!r} is not an x,y pair of numbers") from e
    return as_points(values, str(path))


def json_points(path: Path) -> np.ndarray:
    """Points of a JSON annotation (see the module docstring)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DatasetError(f"unreadable JSON annotation {path}: {e}") from e
    if isinstance(data, dict):
        if "points" not in data:
            raise DatasetError(f"{path}: JSON object has no 'points' field (fields: {sorted(data)})")
        data = data["points"]
    if isinstance(data, list) and data and isinstance(data[0], dict):
        try:
            data = [(p["x"], p["y"]) for p in data]
        except (KeyError, TypeError) as e:
            raise DatasetError(f"{path}: point objects need 'x' and 'y' fields ({e})") from e
    return as_points(data, f"{path}:points")


def folder_points(path: Path) -> np.ndarray:
    return csv_points(path) if path.suffix == ".csv" else json_points(path)


def folder_splits(root: Path) -> tuple[str, ...]:
    """``("train", "test")`` when both subfolders exist, else ``("all",)``."""
    return ("train", "test") if (root / "train").is_dir() and (root / "test").is_dir() else ("all",)


def read_folder(root: Path, split: str, *, strict: bool = True, problems=None, **_) -> list:
    """A user's folder of images with per-image CSV/JSON points (see the module docstring).

    Item ids are the image stems (``"train/<stem>"`` when the folder has train/test splits).
    """
    expected = "ROOT/<stem>.jpg|.png with ROOT/<stem>.csv or ROOT/<stem>.json (optionally in ROOT/train, ROOT/test)"
    require_dir(root, "folder", expected)
    splits = folder_splits(root)
    if split not in splits:
        raise DatasetError(f"folder {root}: split {split!r} not available; this folder has {list(splits)}")
    directory = root if split == "all" else root / split
    images = list_images(directory)
    if not images:
        raise DatasetError(f"folder: no images in {directory}\nexpected layout: {expected}")

    def annotation_for(img: Path) -> Path:
        csv_path = img.with_suffix(".csv")
        return csv_path if csv_path.is_file() else img.with_suffix(".json")

    prefix = "" if split == "all" else f"{split}/"
    return paired_items(
        images,
        annotation_for,
        folder_points,
        lambda img: prefix + img.stem,
        what=f"folder {directory}",
        strict=strict,
        problems=problems,
    )
