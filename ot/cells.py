"""Cell counts: sums of a density map over square cells (CSS-CCNN's unit of matching).

A 224 × 224 crop gives a 28 × 28 density map at 1/8 resolution; with 8 × 8-pixel cells that
is 3 × 3 cells, and the last 4 rows and columns (28 - 24) belong to no cell and are dropped,
as the reference's ``AvgPool2d(8, 8) × 64`` does. Cells are ordered row-major within a map.
"""

from __future__ import annotations

import numpy as np
import torch


def _check_cell_size(cell_size: object) -> int:
    if isinstance(cell_size, bool) or not isinstance(cell_size, (int, np.integer)) \
            or cell_size < 1:
        raise ValueError(f"cell_size must be an integer >= 1, got {cell_size!r}")
    return int(cell_size)


def _grid_shape(height: int, width: int, cell_size: int, name: str) -> tuple[int, int]:
    rows, columns = height // cell_size, width // cell_size
    if rows == 0 or columns == 0:
        raise ValueError(f"{name} maps of {height} x {width} pixels hold no full "
                         f"{cell_size} x {cell_size} cell")
    return rows, columns


def cell_counts(density_maps: torch.Tensor, cell_size: int = 8) -> torch.Tensor:
    """Sum a batch of density maps over cell_size × cell_size cells, differentiably.

    ``density_maps``: (B, 1, H, W) or (B, H, W) floating tensor, people per output pixel.
    Returns (B, (H // cell_size) * (W // cell_size)) people per cell, row-major; pixels
    beyond the last full cell are dropped. Gradients flow back to ``density_maps``.
    """
    size = _check_cell_size(cell_size)
    if not isinstance(density_maps, torch.Tensor):
        raise ValueError(f"density_maps must be a torch.Tensor, "
                         f"got {type(density_maps).__name__}")
    if density_maps.dim() == 4:
        if density_maps.shape[1] != 1:
            raise ValueError(f"density_maps must have one channel, got shape "
                             f"{tuple(density_maps.shape)}")
        maps = density_maps[:, 0]
    elif density_maps.dim() == 3:
        maps = density_maps
    else:
        raise ValueError(f"density_maps must be (B, 1, H, W) or (B, H, W), got shape "
                         f"{tuple(density_maps.shape)}")
    batch, height, width = maps.shape
    rows, columns = _grid_shape(height, width, size, "density_maps")
    cropped = maps[:, : rows * size, : columns * size]
    blocks = cropped.reshape(batch, rows, size, columns, size)
    return blocks.sum(dim=(2, 4)).reshape(batch, rows * columns)


def cell_counts_numpy(maps: np.ndarray, cell_size: int = 8) -> np.ndarray:
    """numpy twin of ``cell_counts`` for (B, H, W) maps: (B, cells), dtype kept (float64 for
    integer input)."""
    size = _check_cell_size(cell_size)
    array = np.asarray(maps)
    if array.ndim != 3:
        raise ValueError(f"maps must be (B, H, W), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    batch, height, width = array.shape
    rows, columns = _grid_shape(height, width, size, "maps")
    cropped = array[:, : rows * size, : columns * size]
    blocks = cropped.reshape(batch, rows, size, columns, size)
    return blocks.sum(axis=(2, 4)).reshape(batch, rows * columns)
