"""From a dataset config to arrays: open a split, load an image at the configured size with its
points and count-exact density target. Shared by training, pool scoring and evaluation, in
process and inside Ray workers (which open the dataset themselves from the config)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import cv2
import numpy as np

from orchestrator.config import DatasetConfig
from orchestrator.data import CountingDataset, DatasetError, density_map, get_spec, open_dataset

DATA_ENV = "COUNTING_DATA_ROOT"


def resolve_root(dataset: DatasetConfig) -> Path | None:
    """The dataset root: as given when absolute, else relative to ``$COUNTING_DATA_ROOT``
    (or the working directory when the variable is unset). ``None`` for generated data."""
    if dataset.root is None:
        return None
    root = Path(dataset.root).expanduser()
    if not root.is_absolute() and os.environ.get(DATA_ENV):
        root = Path(os.environ[DATA_ENV]) / root
    return root


#: Seed of the draw of ``dataset.holdout`` images (fixed: every trial holds out the same ones).
HOLDOUT_SEED = 20240601


def _holdout_split(dataset: DatasetConfig, split: str) -> CountingDataset:
    """With ``dataset.holdout``: the train split without its held-out images, or (for the test
    split) the held-out train images themselves, in the train split's order."""
    train = open_dataset(dataset.name, resolve_root(dataset), dataset.train_split, **dataset.options)
    if not 1 <= dataset.holdout < len(train.items):
        raise DatasetError(f"dataset.holdout must lie in [1, {len(train.items) - 1}] (the {dataset.train_split} "
                           f"split has {len(train.items)} images), got {dataset.holdout}")
    held = set(np.random.default_rng(HOLDOUT_SEED).permutation(len(train.items))[:dataset.holdout].tolist())
    if split == dataset.train_split:
        return dataclasses.replace(train, items=[item for i, item in enumerate(train.items) if i not in held])
    return dataclasses.replace(train, split=f"{dataset.train_split} (held out)",
                               items=[item for i, item in enumerate(train.items) if i in held])


def open_split(dataset: DatasetConfig, split: str) -> CountingDataset:
    """Open ``split`` of the configured dataset, keeping the first ``limit_*`` items. With
    ``dataset.holdout`` the test split is replaced by held-out train images (see
    :class:`~orchestrator.config.DatasetConfig`)."""
    if dataset.holdout is not None and split in (dataset.train_split, dataset.test_split):
        ds = _holdout_split(dataset, split)
    else:
        ds = open_dataset(dataset.name, resolve_root(dataset), split, **dataset.options)
    limit = dataset.limit_train if split == dataset.train_split else dataset.limit_test
    if limit is not None:
        if limit < 1:
            raise DatasetError(f"dataset.limit for split {split!r} must be >= 1, got {limit}")
        ds = dataclasses.replace(ds, items=ds.items[:limit])
    return ds


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image ready for the networks.

    Attributes:
        id: the item id.
        image: ``(H, W, 3) uint8`` RGB, possibly downscaled so ``max(H, W) <= max_side``.
        points: ``(N, 2) float64`` x=column, y=row, pixels of ``image``.
        density: ``(H, W) float32`` count-exact density (sum = N), or ``None`` when not asked for.
    """

    id: str
    image: np.ndarray
    points: np.ndarray
    density: np.ndarray | None

    @property
    def count(self) -> int:
        return int(len(self.points))


def image_scale(shape: tuple[int, int], dataset: DatasetConfig) -> float:
    """The factor an image of ``(H, W)`` pixels is resized by: ``dataset.scale`` for every image
    (people keep the same size relative to one another across images), else the factor that
    brings the longer side down to ``dataset.max_side`` (1 for images already small enough)."""
    if dataset.scale is not None:
        return float(dataset.scale)
    if dataset.max_side is not None:
        return min(1.0, dataset.max_side / max(shape))
    return 1.0


def load_sample(item, dataset: DatasetConfig, with_density: bool = True) -> Sample:
    """Load ``item``, shrunk by :func:`image_scale` (area interpolation) with its points scaled
    alike, so counts never change."""
    image, points = item.load_image(), item.points
    h, w = image.shape[:2]
    scale = image_scale((h, w), dataset)
    if scale < 1:
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        points = np.minimum(points * [new_w / w, new_h / h], [new_w, new_h])
    density = None
    if with_density:
        density = density_map(points, image.shape[:2], get_spec(dataset.name).density).astype(np.float32)
    return Sample(item.id, image, points, density)
