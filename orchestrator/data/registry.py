"""One registry of datasets by name: how to read each, its splits, and its default density kernel."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from .base import CountingDataset, DatasetError
from .crowd_readers import read_jhu_crowd, read_shanghaitech, read_ucf_cc_50, read_ucf_qnrf
from .density import DensityConfig
from .dot_readers import read_dcc, read_mall, read_trancos, read_vgg_cells
from .folder import folder_splits, read_folder

ADAPTIVE = DensityConfig(mode="adaptive")


def _read_synthetic(root, split, *, strict=True, problems=None, **options):
    from .synthetic import read_synthetic  # generated images: no root, no files

    return read_synthetic(root, split, **options)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes:
        name: registry key.
        reader: ``reader(root: Path, split: str, *, strict, problems, **options) -> list[Item]``.
        splits: the split names it accepts.
        density: the default density kernel (the papers' convention for that dataset).
        needs_root: False only for generated data.
        description: one line for ``--help`` and the inspector.
    """

    name: str
    reader: Callable
    splits: tuple[str, ...]
    density: DensityConfig
    needs_root: bool = True
    description: str = ""


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("shanghaitech_a", read_shanghaitech, ("train", "test"), ADAPTIVE,
                    description="ShanghaiTech Part A (300 train / 182 test, dense)"),
        DatasetSpec("shanghaitech_b", read_shanghaitech, ("train", "test"), DensityConfig(sigma=15.0),
                    description="ShanghaiTech Part B (400 train / 316 test, 1024x768)"),
        DatasetSpec("ucf_cc_50", read_ucf_cc_50, ("train", "test", "all"), ADAPTIVE,
                    description="UCF_CC_50 (50 images, 5 stored folds; option fold=1..5)"),
        DatasetSpec("ucf_qnrf", read_ucf_qnrf, ("train", "test"), ADAPTIVE,
                    description="UCF-QNRF (1201 train / 334 test)"),
        DatasetSpec("jhu_crowd", read_jhu_crowd, ("train", "val", "test"), ADAPTIVE,
                    description="JHU-CROWD++ v2.0"),
        DatasetSpec("mall", read_mall, ("train", "test"), DensityConfig(sigma=4.0),
                    description="Mall (2000 frames; first 800 train; option n_train)"),
        DatasetSpec("trancos", read_trancos, ("train", "val", "trainval", "test"), DensityConfig(sigma=4.0),
                    description="TRANCOS v3 vehicles (dot images)"),
        DatasetSpec("dcc", read_dcc, ("train", "test"), DensityConfig(sigma=4.0),
                    description="DCC cells/penguins/petri dishes (dot images)"),
        DatasetSpec("vgg_cells", read_vgg_cells, ("train", "test", "all"), DensityConfig(sigma=4.0),
                    description="VGG synthetic cells (001-100 train, 101-200 test; options train_range, test_range)"),
        DatasetSpec("folder", read_folder, ("all", "train", "test"), ADAPTIVE,
                    description="your own images with <stem>.csv or <stem>.json points beside each"),
        DatasetSpec("synthetic", _read_synthetic, ("train", "test"), ADAPTIVE, needs_root=False,
                    description="generated crowds with known head points (embedded default, no download)"),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    """The registered dataset ``name``, or an error listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}") from None


def dataset_splits(name: str, root: str | Path | None = None) -> tuple[str, ...]:
    """The splits dataset ``name`` offers (for ``folder``, what ``root`` holds)."""
    spec = get_spec(name)
    if name == "folder" and root is not None:
        return folder_splits(Path(root))
    return spec.splits


def open_dataset(name: str, root: str | Path | None, split: str = "train", *, strict: bool = True,
                 **options) -> CountingDataset:
    """Open one split of a registered dataset as lazy items.

    Args:
        name: a key of :data:`DATASETS` (see ``python -m orchestrator.data list``).
        root: the dataset's own folder in its original layout (``None`` for ``synthetic``).
        split: one of the dataset's splits.
        strict: raise on mismatched image/annotation names (default). With ``strict=False`` the
            mismatches are collected in ``CountingDataset.problems`` instead, for the inspector.
        options: reader options (``fold`` for ucf_cc_50, ``n_train`` for mall, ranges for
            vgg_cells, generator settings for synthetic).

    Only directory listings are read here; images and annotations load on first use.
    """
    spec = get_spec(name)
    if split not in dataset_splits(name, root):
        raise DatasetError(f"{name}: unknown split {split!r}; choose from {list(dataset_splits(name, root))}")
    if spec.needs_root:
        if root is None:
            raise DatasetError(f"{name}: a root folder is required (the dataset's own folder)")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"{name}: root folder not found: {root}")
    elif root is not None:
        root = Path(root)
    problems: list[str] = []
    items = spec.reader(root, split, strict=strict, problems=problems, **options)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{name}/{split}: duplicate item ids in {root}")
    return CountingDataset(name=name, split=split, root=root, items=items, problems=problems)
