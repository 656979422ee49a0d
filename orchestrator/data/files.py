"""Listing image files and pairing them with annotation files, for every reader."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .base import DatasetError, Item

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def natural_key(path: Path) -> tuple:
    """Sort key that orders ``IMG_2`` before ``IMG_10``."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name))


def list_images(directory: Path, suffixes=IMAGE_SUFFIXES, exclude: Callable[[Path], bool] | None = None) -> list[Path]:
    """Image files directly inside ``directory``, naturally sorted."""
    files = [
        p for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and not (exclude and exclude(p))
    ]
    return sorted(files, key=natural_key)


def _missing_annotation(path: Path) -> np.ndarray:
    raise DatasetError(f"missing annotation file: {path}")


def paired_items(
    images: list[Path],
    annotation_for: Callable[[Path], Path],
    read_points: Callable[[Path], np.ndarray],
    id_for: Callable[[Path], str],
    *,
    what: str,
    strict: bool = True,
    orphan_glob: str | None = None,
    annotation_dir: Path | None = None,
    problems: list[str] | None = None,
) -> list[Item]:
    """One lazy :class:`Item` per image, its points read by ``read_points(annotation_file)``.

    With ``strict`` (the default) an image without its annotation file, or an annotation file
    without its image (found with ``orphan_glob`` in ``annotation_dir``), raises one
    :class:`DatasetError` listing them. With ``strict=False`` such images still give items whose
    points raise on access, and every mismatch is appended to ``problems`` (when given), so that
    the inspector can report every problem at once.
    """
    items, missing = [], []
    expected = set()
    for img in images:
        ann = annotation_for(img)
        expected.add(ann.resolve())
        if ann.is_file():
            loader = functools.partial(read_points, ann)
        else:
            missing.append(ann)
            loader = functools.partial(_missing_annotation, ann)
        items.append(Item(id_for(img), img, loader))
    orphans = []
    if orphan_glob and annotation_dir is not None and annotation_dir.is_dir():
        orphans = sorted(p for p in annotation_dir.glob(orphan_glob) if p.resolve() not in expected)
    if strict and (missing or orphans):
        lines = [f"{what}: image and annotation names do not match"]
        if missing:
            lines.append(f"  {len(missing)} image(s) without annotation, e.g. " + ", ".join(map(str, missing[:3])))
        if orphans:
            lines.append(f"  {len(orphans)} annotation(s) without image, e.g. " + ", ".join(map(str, orphans[:3])))
        raise DatasetError("\n".join(lines))
    if problems is not None:
        problems.extend(f"missing annotation: {p}" for p in missing)
        problems.extend(f"annotation without image: {p}" for p in orphans)
    return items
