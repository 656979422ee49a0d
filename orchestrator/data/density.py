"""Count-exact density targets: one normalised Gaussian per point, and 8x8 block sums.

The CSRNet reference lets kernels fall off the image border and then rescales maps with a bicubic
resize, so its targets do not sum to the annotated count. Ours do, by construction:

* each point's kernel is a separable Gaussian evaluated at pixel centres, truncated to the image
  and to ``truncate`` sigmas, and each 1-D factor is renormalised to sum to 1 over the pixels it
  covers, so every point adds exactly 1 (up to float64 rounding) wherever it lies, borders
  included;
* downsampling to the network's 1/8 output is a sum over 8x8 blocks after zero padding to a
  multiple of 8, which preserves the total exactly (the networks pad their input the same way).

Sigma: ``fixed`` uses one sigma for all points (ShanghaiTech B: 15 px); ``adaptive`` is the
geometry-adaptive kernel, sigma_i = beta x mean distance from point i to its k nearest neighbours
(k = 3, beta = 0.3, scipy kd-tree). With fewer than k other points the available neighbours are
used; a lone point gets sigma = (H + W) / 8, the CSRNet reference's fallback (mean side / 4).
Sigmas are floored at ``min_sigma`` (0.5 px) so coincident points stay well defined.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.spatial import cKDTree


@dataclasses.dataclass(frozen=True)
class DensityConfig:
    """How to turn points into a density map.

    Attributes:
        mode: ``"fixed"`` or ``"adaptive"``.
        sigma: the fixed sigma in pixels (``mode="fixed"``).
        k: neighbours for the adaptive sigma.
        beta: adaptive sigma = beta x mean neighbour distance.
        truncate: kernel radius in sigmas (scipy's gaussian_filter default, 4).
        min_sigma: smallest sigma used, pixels.
    """

    mode: str = "fixed"
    sigma: float = 15.0
    k: int = 3
    beta: float = 0.3
    truncate: float = 4.0
    min_sigma: float = 0.5

    def __post_init__(self):
        if self.mode not in ("fixed", "adaptive"):
            raise ValueError(f"DensityConfig.mode must be 'fixed' or 'adaptive', got {self.mode!r}")
        for name in ("sigma", "beta", "truncate", "min_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DensityConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if int(self.k) != self.k or self.k < 1:
            raise ValueError(f"DensityConfig.k must be a positive integer, got {self.k!r}")


def point_sigmas(points: np.ndarray, shape: tuple[int, int], config: DensityConfig) -> np.ndarray:
    """Per-point sigma in pixels, ``(N,) float64`` (see the module docstring)."""
    n = len(points)
    if config.mode == "fixed" or n == 0:
        sigmas = np.full(n, float(config.sigma))
    elif n == 1:
        sigmas = np.array([(shape[0] + shape[1]) / 8.0])
    else:
        k = min(config.k, n - 1)
        dist, _ = cKDTree(points).query(points, k=k + 1)
        sigmas = config.beta * dist[:, 1:].mean(axis=1)
    return np.maximum(sigmas, config.min_sigma)


def _axis_kernel(center: float, sigma: float, radius: float, length: int) -> tuple[int, np.ndarray]:
    """Normalised 1-D Gaussian over the pixels within ``radius`` of ``center`` inside
    ``[0, length)``; returns (first pixel index, weights summing to 1)."""
    nearest = min(max(int(math.floor(center)), 0), length - 1)
    lo = max(0, min(nearest, int(math.floor(center - radius))))
    hi = min(length, max(nearest + 1, int(math.floor(center + radius)) + 1))
    d2 = (np.arange(lo, hi) + 0.5 - center) ** 2
    w = np.exp(-(d2 - d2.min()) / (2.0 * sigma * sigma))  # max weight is 1: never underflows to 0
    return lo, w / w.sum()


def density_map(points: np.ndarray, shape: tuple[int, int], config: DensityConfig = DensityConfig()) -> np.ndarray:
    """Count-exact density map.

    Args:
        points: ``(N, 2) float64`` x=column, y=row, pixels; all must lie in ``[0, W] x [0, H]``.
        shape: ``(H, W)`` of the image.
        config: kernel settings.

    Returns:
        ``(H, W) float64`` map whose sum equals ``N`` up to float64 rounding.
    """
    height, width = int(shape[0]), int(shape[1])
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    assert height > 0 and width > 0, f"image shape must be positive, got {shape}"
    assert np.all((points[:, 0] >= 0) & (points[:, 0] <= width) & (points[:, 1] >= 0) & (points[:, 1] <= height)), (
        "density_map: points outside the image; drop them first (Item.points does)"
    )
    density = np.zeros((height, width), dtype=np.float64)
    sigmas = point_sigmas(points, (height, width), config)
    for (x, y), sigma in zip(points, sigmas):
        radius = config.truncate * sigma
        x0, gx = _axis_kernel(x, sigma, radius, width)
        y0, gy = _axis_kernel(y, sigma, radius, height)
        density[y0:y0 + len(gy), x0:x0 + len(gx)] += np.outer(gy, gx)
    return density


def block_sum(density: np.ndarray, factor: int = 8) -> np.ndarray:
    """Sum ``factor x factor`` blocks after zero-padding bottom/right to a multiple of ``factor``.

    ``(H, W)`` -> ``(ceil(H/f), ceil(W/f))``, same dtype; the total is preserved exactly up to
    rounding. This is the target for a network whose output is 1/8 of its zero-padded input.
    """
    h, w = density.shape
    hp, wp = -(-h // factor) * factor, -(-w // factor) * factor
    if (hp, wp) != (h, w):
        padded = np.zeros((hp, wp), dtype=density.dtype)
        padded[:h, :w] = density
        density = padded
    return density.reshape(hp // factor, factor, wp // factor, factor).sum(axis=(1, 3))
