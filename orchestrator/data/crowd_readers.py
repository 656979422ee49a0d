"""Readers for the crowd datasets stored as images + per-image annotation files.

Every reader takes the dataset's own folder in its original layout and a split name, and returns
lazy :class:`~orchestrator.data.base.Item` objects (nothing but directory listings is read here).
Points outside the image are never clipped: :attr:`Item.points` drops them and
:attr:`Item.outside_points` keeps them for reporting (UCF_CC_50 has 5 such points in 4 files).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .base import DatasetError, as_points, require_dir
from .files import list_images, paired_items
from .matfiles import ann_points, shanghaitech_points

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
UCF_CC_50_FOLDS_FILE = REPO_CONFIGS / "ucf_cc_50_folds.json"


def read_shanghaitech(root: Path, split: str, *, strict: bool = True, problems=None, **_) -> list:
    """ShanghaiTech Part A or B: ``{train,test}_data/images/IMG_n.jpg`` with
    ``{train,test}_data/ground-truth/GT_IMG_n.mat`` (points ``image_info[0,0][0,0][0]``).

    ``root`` is the part's own folder, e.g. ``.../ShanghaiTech/part_B``. Item ids:
    ``"train/IMG_12"``.
    """
    expected = "ROOT/{train,test}_data/images/IMG_<n>.jpg and ROOT/{train,test}_data/ground-truth/GT_IMG_<n>.mat"
    split_dir = require_dir(root / f"{split}_data", "ShanghaiTech", expected)
    images_dir = require_dir(split_dir / "images", "ShanghaiTech", expected)
    gt_dir = require_dir(split_dir / "ground-truth", "ShanghaiTech", expected)
    return paired_items(
        list_images(images_dir),
        lambda img: gt_dir / f"GT_{img.stem}.mat",
        shanghaitech_points,
        lambda img: f"{split}/{img.stem}",
        what=f"ShanghaiTech {split_dir}",
        strict=strict,
        orphan_glob="GT_*.mat",
        annotation_dir=gt_dir,
        problems=problems,
    )


def ucf_cc_50_folds() -> list[list[int]]:
    """The five fixed UCF_CC_50 folds (image numbers 1..50), from ``configs/ucf_cc_50_folds.json``.

    The folds were drawn once with a seeded permutation and stored, so every run and every user
    sees the same folds (the dataset ships none).
    """
    try:
        spec = json.loads(UCF_CC_50_FOLDS_FILE.read_text())
        folds = [list(map(int, f)) for f in spec["folds"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"UCF_CC_50 fold file {UCF_CC_50_FOLDS_FILE} unreadable: {e}") from e
    if sorted(sum(folds, [])) != list(range(1, 51)) or len(folds) != 5:
        raise DatasetError(f"{UCF_CC_50_FOLDS_FILE}: folds must partition 1..50 into 5 lists")
    return folds


def read_ucf_cc_50(root: Path, split: str, *, fold: int = 1, strict: bool = True, problems=None, **_) -> list:
    """UCF_CC_50: ``<n>.jpg`` + ``<n>_ann.mat`` (key ``annPoints``), n = 1..50, all grayscale.

    ``root`` is the folder holding the 50 images, or its parent (the archive's outer
    ``UCF_CC_50`` folder with ``Readme.txt``). Splits: ``test`` = fold ``fold`` (1..5) of the
    stored folds, ``train`` = the other four, ``all`` = every image. Item ids: ``"12"``.
    """
    expected = "ROOT/<n>_ann.mat and ROOT/<n>.jpg for n = 1..50 (or ROOT/UCF_CC_50/...)"
    require_dir(root, "UCF_CC_50", expected)
    if not any(root.glob("*_ann.mat")) and (root / "UCF_CC_50").is_dir():
        root = root / "UCF_CC_50"
    if not any(root.glob("*_ann.mat")):
        raise DatasetError(f"UCF_CC_50: no <n>_ann.mat files in {root}\nexpected layout: {expected}")
    if fold not in range(1, 6):
        raise DatasetError(f"UCF_CC_50: fold must be 1..5, got {fold!r}")
    images = list_images(root)
    if split != "all":
        test_ids = set(ucf_cc_50_folds()[fold - 1])
        keep = (lambda n: n in test_ids) if split == "test" else (lambda n: n not in test_ids)
        images = [p for p in images if p.stem.isdigit() and keep(int(p.stem))]
    return paired_items(
        images,
        lambda img: img.with_name(f"{img.stem}_ann.mat"),
        ann_points,
        lambda img: img.stem,
        what=f"UCF_CC_50 {root}",
        strict=strict,
        problems=problems,
    )


def read_ucf_qnrf(root: Path, split: str, *, strict: bool = True, problems=None, **_) -> list:
    """UCF-QNRF: ``{Train,Test}/img_XXXX.jpg`` + ``img_XXXX_ann.mat`` (key ``annPoints``).

    ``root`` is the ``UCF-QNRF_ECCV18`` folder. Item ids: ``"train/img_0001"``.
    """
    expected = "ROOT/{Train,Test}/img_<nnnn>.jpg with img_<nnnn>_ann.mat beside each image"
    split_dir = require_dir(root / split.capitalize(), "UCF-QNRF", expected)
    return paired_items(
        list_images(split_dir),
        lambda img: img.with_name(f"{img.stem}_ann.mat"),
        ann_points,
        lambda img: f"{split}/{img.stem}",
        what=f"UCF-QNRF {split_dir}",
        strict=strict,
        orphan_glob="*_ann.mat",
        annotation_dir=split_dir,
        problems=problems,
    )


def jhu_points(path: Path) -> np.ndarray:
    """Points of a JHU-CROWD++ ``gt/<n>.txt``: one head per line, ``x y w h occlusion blur``;
    an empty file means 0 heads."""
    try:
        text = path.read_text()
    except OSError as e:
        raise DatasetError(f"unreadable annotation file {path}: {e}") from e
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DatasetError(f"{path}:{lineno}: expected 'x y w h occlusion blur', got {line!r}")
        try:
            rows.append((float(fields[0]), float(fields[1])))
        except ValueError as e:
            raise DatasetError(f"{path}:{lineno}: x, y are not numbers in {line!r}") from e
    return as_points(rows, str(path))


def read_jhu_crowd(root: Path, split: str, *, strict: bool = True, problems=None, **_) -> list:
    """JHU-CROWD++ (v2.0): ``{train,val,test}/images/<n>.jpg`` + ``{train,val,test}/gt/<n>.txt``.

    ``root`` is the ``jhu_crowd_v2.0`` folder. Item ids: ``"train/0001"``.
    """
    expected = "ROOT/{train,val,test}/images/<n>.jpg and ROOT/{train,val,test}/gt/<n>.txt"
    split_dir = require_dir(root / split, "JHU-CROWD++", expected)
    images_dir = require_dir(split_dir / "images", "JHU-CROWD++", expected)
    gt_dir = require_dir(split_dir / "gt", "JHU-CROWD++", expected)
    return paired_items(
        list_images(images_dir),
        lambda img: gt_dir / f"{img.stem}.txt",
        jhu_points,
        lambda img: f"{split}/{img.stem}",
        what=f"JHU-CROWD++ {split_dir}",
        strict=strict,
        orphan_glob="*.txt",
        annotation_dir=gt_dir,
        problems=problems,
    )
