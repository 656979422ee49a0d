"""Readers for datasets whose annotations are dot images (one marked pixel per object), and Mall.

A dot image marks each object with one bright pixel (VGG cells: pure red on black). The count is
the number of marked pixels, never the number of connected blobs (touching dots would merge), and
each point sits at its pixel's centre: ``(column + 0.5, row + 0.5)``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .base import DatasetError, Item, as_points, read_image_rgb, require_dir
from .files import list_images, paired_items
from .matfiles import load_mat, mat_key


def dot_image_points(path: Path, threshold: int = 128) -> np.ndarray:
    """Points of a dot image: every pixel whose brightest channel is ``>= threshold``.

    Returns ``(N, 2) float64`` pixel centres, x = column + 0.5, y = row + 0.5, in row-major order.
    """
    dots = read_image_rgb(path)
    rows, cols = np.nonzero(dots.max(axis=2) >= threshold)
    return np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64)


def _number_range(value, name: str) -> range:
    try:
        lo, hi = (int(v) for v in value)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"vgg_cells: {name} must be (first, last) image numbers, got {value!r}") from e
    if not 1 <= lo <= hi:
        raise DatasetError(f"vgg_cells: {name} must satisfy 1 <= first <= last, got {value!r}")
    return range(lo, hi + 1)


def read_vgg_cells(root: Path, split: str, *, train_range=(1, 100), test_range=(101, 200),
                   strict: bool = True, problems=None, **_) -> list:
    """VGG synthetic cells: ``NNNcell.png`` + ``NNNdots.png`` (red dot per cell), NNN = 001..200.

    Splits by image number: ``train`` = ``train_range`` (default 1..100), ``test`` =
    ``test_range`` (default 101..200), ``all`` = every image. Item ids: ``"017"``.
    """
    expected = "ROOT/<NNN>cell.png and ROOT/<NNN>dots.png"
    require_dir(root, "vgg_cells", expected)
    images = list_images(root, exclude=lambda p: not p.stem.endswith("cell"))
    if not images:
        raise DatasetError(f"vgg_cells: no <NNN>cell.png images in {root}\nexpected layout: {expected}")
    if split != "all":
        numbers = _number_range(train_range if split == "train" else test_range, f"{split}_range")
        images = [p for p in images if p.stem[:-4].isdigit() and int(p.stem[:-4]) in numbers]
    return paired_items(
        images,
        lambda img: img.with_name(img.name.replace("cell.png", "dots.png")),
        dot_image_points,
        lambda img: img.stem[:-4],
        what=f"vgg_cells {root}",
        strict=strict,
        problems=problems,
    )


TRANCOS_SPLIT_FILES = {"train": "training.txt", "val": "validation.txt", "trainval": "trainval.txt", "test": "test.txt"}


def trancos_roi(path: Path) -> np.ndarray:
    """A TRANCOS region of interest, ``<name>mask.mat``: ``(H, W) bool``, True = evaluated.
    The mask is key ``BW`` (or the file's only array)."""
    mat = load_mat(path)
    keys = [k for k in mat if not k.startswith("__")]
    mask = mat_key(mat, "BW" if "BW" in mat or len(keys) != 1 else keys[0], path)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DatasetError(f"{path}: region of interest must be a 2-D (H, W) array, got shape {mask.shape}")
    return mask != 0


def _checked_roi(mask_path: Path, height: int, width: int) -> np.ndarray:
    mask = trancos_roi(mask_path)
    if mask.shape != (height, width):
        raise DatasetError(f"{mask_path}: region of interest is {mask.shape}, its image is {(height, width)}")
    return mask


def _roi_points(mask_path: Path, dots_path: Path) -> np.ndarray:
    """The dots inside the region of interest (a dot's pixel decides)."""
    dots = read_image_rgb(dots_path)
    rows, cols = np.nonzero(dots.max(axis=2) >= 128)
    keep = _checked_roi(mask_path, *dots.shape[:2])[rows, cols]
    return np.stack([cols[keep] + 0.5, rows[keep] + 0.5], axis=1).astype(np.float64)


def _roi_image(mask_path: Path, image_path: Path) -> np.ndarray:
    """The image with everything outside the region of interest black."""
    image = read_image_rgb(image_path).copy()
    image[~_checked_roi(mask_path, *image.shape[:2])] = 0
    return image


def read_trancos(root: Path, split: str, *, roi: bool = True, strict: bool = True, problems=None, **_) -> list:
    """TRANCOS (v3): ``images/<name>.jpg`` + ``images/<name>dots.png``, split lists in
    ``image_sets/{training,validation,trainval,test}.txt`` (one image file name per line).

    ``root`` is the ``TRANCOS_v3`` folder. ``roi`` (default on, the benchmark's protocol): each
    image's region of interest ``images/<name>mask.mat`` is applied: pixels outside it are black
    and vehicles outside it are dropped, so counts, density targets and test MAE cover the
    region only; ``roi: false`` (``dataset.options``) counts the whole image. Item ids:
    ``"image-1-000001"``.
    """
    if not isinstance(roi, bool):
        raise DatasetError(f"TRANCOS: option roi must be true or false, got {roi!r}")
    expected = "ROOT/images/<name>.jpg, ROOT/images/<name>dots.png, ROOT/image_sets/<split>.txt"
    if roi:
        expected += ", ROOT/images/<name>mask.mat (roi: false to count whole images)"
    images_dir = require_dir(root / "images", "TRANCOS", expected)
    list_file = root / "image_sets" / TRANCOS_SPLIT_FILES[split]
    try:
        names = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
    except OSError as e:
        raise DatasetError(f"TRANCOS: split list {list_file} unreadable ({e})\nexpected layout: {expected}") from e
    images = [images_dir / (n if Path(n).suffix else n + ".jpg") for n in names]
    absent = [p for p in images if not p.is_file() or (roi and not _mask_of(p).is_file())]
    if absent and strict:
        raise DatasetError(f"TRANCOS: {len(absent)} image(s) listed in {list_file} lack their image or region of "
                           f"interest, e.g. {absent[0]}\nexpected layout: {expected}")
    if problems is not None:
        problems.extend(f"listed in {list_file.name} but missing (image or mask): {p}" for p in absent)
    present = [p for p in images if p not in absent]
    items = paired_items(present, _dots_of, dot_image_points, lambda img: img.stem, what=f"TRANCOS {images_dir}",
                         strict=strict, problems=problems)
    return [_with_roi(item) for item in items] if roi else items


def _dots_of(image: Path) -> Path:
    return image.with_name(f"{image.stem}dots.png")


def _with_roi(item: Item) -> Item:
    """``item`` read through its region of interest (a missing dot image still fails on access)."""
    mask, dots = _mask_of(item.image_path), _dots_of(item.image_path)
    points = functools.partial(_roi_points, mask, dots) if dots.is_file() else item._load_points
    return Item(item.id, item.image_path, points, load_image=functools.partial(_roi_image, mask, item.image_path))


def _mask_of(image: Path) -> Path:
    return image.with_name(f"{image.stem}mask.mat")


DCC_SPLIT_DIRS = {"train": "trainval", "test": "test"}


def read_dcc(root: Path, split: str, *, strict: bool = True, problems=None, **_) -> list:
    """DCC (Marsden et al., cells / penguins / petri dishes): ``{trainval,test}/images/<name>.png``
    with dot images in ``{trainval,test}/dots/<name>.png`` (or ``images/<name>dots.png``).

    ``root`` is the ``DCC`` folder; split ``train`` reads ``trainval``. Item ids: ``"train/<name>"``.
    """
    expected = "ROOT/{trainval,test}/images/<name>.png and ROOT/{trainval,test}/dots/<name>.png"
    split_dir = require_dir(root / DCC_SPLIT_DIRS[split], "DCC", expected)
    images_dir = require_dir(split_dir / "images", "DCC", expected)
    dots_dir = split_dir / "dots"

    def dots_for(img: Path) -> Path:
        return dots_dir / img.name if dots_dir.is_dir() else img.with_name(f"{img.stem}dots.png")

    return paired_items(
        list_images(images_dir, exclude=lambda p: p.stem.endswith("dots")),
        dots_for,
        dot_image_points,
        lambda img: f"{split}/{img.stem}",
        what=f"DCC {split_dir}",
        strict=strict,
        problems=problems,
    )


def _frame_points(points: np.ndarray) -> np.ndarray:
    return points


def read_mall(root: Path, split: str, *, n_train: int = 800, strict: bool = True, problems=None, **_) -> list:
    """Mall: ``frames/seq_000001.jpg`` .. ``seq_002000.jpg`` and ``mall_gt.mat``
    (``frame[0][i]['loc'][0,0]`` = ``(N, 2)`` x, y of frame i+1).

    The first ``n_train`` frames (default 800, as in the papers) are ``train``, the rest
    ``test``. ``mall_gt.mat`` is read once when the split is opened. Item ids: ``"seq_000001"``.
    """
    expected = "ROOT/frames/seq_<nnnnnn>.jpg and ROOT/mall_gt.mat"
    frames_dir = require_dir(root / "frames", "Mall", expected)
    gt_path = root / "mall_gt.mat"
    frames = mat_key(load_mat(gt_path), "frame", gt_path)
    try:
        locs = [frames[0][i]["loc"][0, 0] for i in range(frames.shape[1])]
    except (IndexError, KeyError, ValueError, TypeError) as e:
        raise DatasetError(f"{gt_path}: 'frame' does not have the Mall layout frame[0][i]['loc'][0,0]: {e}") from e
    indices = range(0, min(n_train, len(locs))) if split == "train" else range(n_train, len(locs))
    items = []
    for i in indices:
        img = frames_dir / f"seq_{i + 1:06d}.jpg"
        if not img.is_file():
            if strict:
                raise DatasetError(f"Mall: frame image {img} not found ({gt_path} annotates {len(locs)} frames)")
            if problems is not None:
                problems.append(f"missing frame image: {img}")
            continue
        points = as_points(locs[i], f"{gt_path}:frame[{i}].loc")
        items.append(Item(img.stem, img, functools.partial(_frame_points, points)))
    return items
