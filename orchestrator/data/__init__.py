"""The dataset layer: readers for every dataset of both papers, count-exact density targets,
training patches and synthetic crowds.

    from orchestrator.data import open_dataset
    ds = open_dataset("shanghaitech_b", "/data/ShanghaiTech/part_B", "test")
    item = ds[0]; item.load_image(); item.points; item.count
"""

from .base import CountingDataset, DatasetError, Item
from .density import DensityConfig, block_sum, density_map
from .registry import DATASETS, DatasetSpec, dataset_splits, get_spec, open_dataset

__all__ = [
    "CountingDataset", "DatasetError", "Item", "DensityConfig", "block_sum", "density_map",
    "DATASETS", "DatasetSpec", "dataset_splits", "get_spec", "open_dataset",
]
