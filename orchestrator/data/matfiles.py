"""Reading point annotations out of MATLAB files, with errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from .base import DatasetError, as_points


def load_mat(path: Path) -> dict:
    """``scipy.io.loadmat`` with a :class:`DatasetError` naming the file on any failure."""
    try:
        return scipy.io.loadmat(str(path))
    except FileNotFoundError as e:
        raise DatasetError(f"annotation file not found: {path}") from e
    except Exception as e:  # scipy raises ValueError, MatReadError, TypeError, OSError...
        raise DatasetError(f"unreadable .mat file {path}: {type(e).__name__}: {e}") from e


def mat_key(mat: dict, key: str, path: Path):
    """``mat[key]``, or an error naming the file, the key and the keys that exist."""
    if key not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path}: key {key!r} not found (keys present: {keys})")
    return mat[key]


def shanghaitech_points(path: Path) -> np.ndarray:
    """Points of a ShanghaiTech ``GT_IMG_n.mat``: ``image_info[0,0][0,0][0]``, checked against
    the stored count ``image_info[0,0][0,0][1]``."""
    info = mat_key(load_mat(path), "image_info", path)
    try:
        record = info[0, 0][0, 0]
        location, number = record[0], record[1]
    except (IndexError, TypeError, KeyError) as e:
        raise DatasetError(
            f"{path}: 'image_info' does not have the ShanghaiTech layout "
            f"image_info[0,0][0,0] = (location, number): {e}"
        ) from e
    points = as_points(location, f"{path}:image_info.location")
    stored = int(np.asarray(number).ravel()[0]) if np.asarray(number).size else len(points)
    if stored != len(points):
        raise DatasetError(f"{path}: image_info.number = {stored} but {len(points)} locations stored")
    return points


def ann_points(path: Path, key: str = "annPoints") -> np.ndarray:
    """Points of a UCF_CC_50 / UCF-QNRF ``*_ann.mat`` (key ``annPoints``, ``(N, 2)`` x, y)."""
    return as_points(mat_key(load_mat(path), key, path), f"{path}:{key}")
