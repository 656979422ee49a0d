"""Grid signatures of density maps: the cell counts GDSIM compares (AL-AC eq. 2).

A signature holds, for every level ``L = 0 .. levels``, the counts of the ``2^L x 2^L = 4^L``
cells of a regular grid laid over the whole map, concatenated level by level, each level in
row-major cell order (row of cells first, then column)::

    [level 0: 1 value | level 1: 4 values | level 2: 16 values | level 3: 64 values]  (levels=3)

Cells are proportional to the map size: at level ``L`` the cell borders lie at rows
``i * H / 2^L`` and columns ``j * W / 2^L`` (``i, j = 0 .. 2^L``), real numbers. When ``H`` or
``W`` is not divisible by ``2^L`` a border cuts through a pixel; that pixel's mass is split
between the cells **in proportion to the area that falls into each** (density is taken as
uniform inside a pixel). No mass is lost or duplicated: every level sums to the map's total,
and level ``L`` cells are exact unions of ``2 x 2`` level ``L + 1`` cells (the borders of a
coarse grid are borders of every finer grid), so coarser levels are computed by summing finer
cells.

All values are float64 counts (people), whatever the dtype of the density map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["signature_length", "grid_signature", "grid_signatures", "cell_overlap_weights"]


def signature_length(levels: int) -> int:
    """Number of values in a signature with levels ``0 .. levels``: ``(4^(levels+1) - 1) / 3``.

    ``levels=3`` -> 85 (1 + 4 + 16 + 64).
    """
    _check_levels(levels)
    return (4 ** (levels + 1) - 1) // 3


def cell_overlap_weights(length_px: int, n_cells: int) -> np.ndarray:
    """Fraction of each pixel that falls into each of ``n_cells`` equal cells along one axis.

    Args:
        length_px: map size along the axis, pixels (>= 1).
        n_cells: number of equal cells the axis is cut into (>= 1).

    Returns:
        ``(n_cells, length_px)`` float64 matrix ``W``; ``W[c, p]`` is the length of pixel
        ``[p, p + 1)`` inside cell ``[c * length_px / n_cells, (c + 1) * length_px / n_cells)``.
        Every column sums to 1. With ``n_cells`` a power of two all entries are exact binary
        fractions, so no rounding happens here.
    """
    if not isinstance(length_px, (int, np.integer)) or length_px < 1:
        raise ValueError(f"length_px must be a positive integer, got {length_px!r}")
    if not isinstance(n_cells, (int, np.integer)) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
    borders = np.arange(n_cells + 1, dtype=np.float64) * (length_px / n_cells)
    pixel_start = np.arange(length_px, dtype=np.float64)
    lower = np.maximum(borders[:-1, None], pixel_start[None, :])
    upper = np.minimum(borders[1:, None], pixel_start[None, :] + 1.0)
    return np.clip(upper - lower, 0.0, None)


def grid_signature(density_map: np.ndarray, levels: int = 3) -> np.ndarray:
    """Signature of one density map.

    Args:
        density_map: ``(H, W)`` density, people per pixel, any real dtype, finite.
        levels: finest level ``LA`` (the paper uses 3).

    Returns:
        ``(signature_length(levels),)`` float64 cell counts, layout as in the module docstring.
    """
    density = _as_map_stack(density_map, name="density_map", ndim=2)[None]
    return _signatures_same_size(density, levels)[0]


def grid_signatures(
    density_maps: np.ndarray | Sequence[np.ndarray], levels: int = 3
) -> np.ndarray:
    """Signatures of many density maps.

    Args:
        density_maps: either a ``(N, H, W)`` array (maps of one size, computed in one batched
            product) or a sequence of ``(H_i, W_i)`` maps of possibly different sizes.
        levels: finest level ``LA``.

    Returns:
        ``(N, signature_length(levels))`` float64; row ``i`` equals
        ``grid_signature(density_maps[i], levels)``.
    """
    _check_levels(levels)
    if isinstance(density_maps, np.ndarray):
        stack = _as_map_stack(density_maps, name="density_maps", ndim=3)
        return _signatures_same_size(stack, levels)
    maps = list(density_maps)
    out = np.empty((len(maps), signature_length(levels)), dtype=np.float64)
    for index, density in enumerate(maps):
        single = _as_map_stack(density, name=f"density_maps[{index}]", ndim=2)[None]
        out[index] = _signatures_same_size(single, levels)[0]
    return out


def _signatures_same_size(stack: np.ndarray, levels: int) -> np.ndarray:
    """``(N, H, W)`` float64 maps -> ``(N, S)`` signatures (finest level by area weights)."""
    _check_levels(levels)
    n_maps, height, width = stack.shape
    n_fine = 2**levels
    row_weights = cell_overlap_weights(height, n_fine)  # (n_fine, H)
    col_weights = cell_overlap_weights(width, n_fine)  # (n_fine, W)
    # (n_fine, H) @ (N, H, W) @ (W, n_fine) -> (N, n_fine, n_fine)
    cells = np.matmul(np.matmul(row_weights, stack), col_weights.T)
    per_level = [cells]
    for _ in range(levels):
        finer = per_level[-1]
        side = finer.shape[1] // 2
        coarser = finer.reshape(n_maps, side, 2, side, 2).sum(axis=(2, 4))
        per_level.append(coarser)
    per_level.reverse()  # level 0 first
    return np.concatenate([level.reshape(n_maps, -1) for level in per_level], axis=1)


def _as_map_stack(array: np.ndarray, *, name: str, ndim: int) -> np.ndarray:
    values = np.asarray(array)
    if values.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {values.shape}")
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {values.dtype}")
    if min(values.shape[-2:]) < 1:
        raise ValueError(f"{name} must have at least one pixel, got shape {values.shape}")
    values = values.astype(np.float64, copy=False)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return values


def _check_levels(levels: int) -> None:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or not 0 <= levels <= 8:
        raise ValueError(f"levels must be an integer in 0..8, got {levels!r}")
