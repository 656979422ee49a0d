"""CSS-CCNN++ edge pseudo-density (paper section 3.4, reference ``create_pseudo_density``).

Per crop: RGB -> grayscale (``grayscale``, below) -> Canny(225, 250) -> resize to 1/8 (OpenCV's default bilinear
interpolation, as the reference) -> 5 × 5 Gaussian blur with sigma 2. Like the reference, the
resize and blur run on the uint8 edge image (OpenCV rounds to integers after each step). The
batch is then divided by its maximum, so values lie in [0, 1] and only their relative sizes
matter; a batch without any edge gives all zeros (the reference would divide by zero).
Pseudo counts are cell sums of these maps with the same cells as the predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ot.cells import cell_counts_numpy

#: Grayscale conversions before Canny (``EdgeDensityConfig.grayscale``): ``luminance`` =
#: 0.299 R + 0.587 G + 0.114 B of the RGB crop (ours, correct); ``reference_bgr`` = OpenCV's
#: ``COLOR_BGR2GRAY`` applied to the RGB crop, as the reference code does (R and B weights swapped).
GRAYSCALE_CODES = {"luminance": cv2.COLOR_RGB2GRAY, "reference_bgr": cv2.COLOR_BGR2GRAY}


@dataclass(frozen=True)
class EdgeDensityConfig:
    """Edge pseudo-density settings; defaults are the reference's (ShanghaiTech A, UCF-QNRF)."""

    canny_low: float = 225.0
    canny_high: float = 250.0
    downscale: int = 8
    blur_kernel_size: int = 5
    blur_sigma: float = 2.0
    grayscale: str = "luminance"

    def __post_init__(self) -> None:
        if self.grayscale not in GRAYSCALE_CODES:
            raise ValueError(f"grayscale must be one of {list(GRAYSCALE_CODES)}, got {self.grayscale!r}")
        if not (0 <= self.canny_low <= self.canny_high):
            raise ValueError(f"need 0 <= canny_low <= canny_high, got "
                             f"{self.canny_low!r}, {self.canny_high!r}")
        if isinstance(self.downscale, bool) or not isinstance(self.downscale, int) \
                or self.downscale < 1:
            raise ValueError(f"downscale must be an integer >= 1, got {self.downscale!r}")
        if isinstance(self.blur_kernel_size, bool) or not isinstance(self.blur_kernel_size, int) \
                or self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be an odd integer >= 1, "
                             f"got {self.blur_kernel_size!r}")
        if not self.blur_sigma > 0:
            raise ValueError(f"blur_sigma must be > 0, got {self.blur_sigma!r}")


def _check_crops(crops: object, downscale: int) -> np.ndarray:
    if not isinstance(crops, np.ndarray):
        raise ValueError(f"crops must be a numpy array, got {type(crops).__name__}")
    if crops.dtype != np.uint8:
        raise ValueError(f"crops must be uint8 RGB (0..255), got dtype {crops.dtype}")
    if crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[0] < 1:
        raise ValueError(f"crops must be (B, H, W, 3) with B >= 1, got shape {crops.shape}")
    if crops.shape[1] < downscale or crops.shape[2] < downscale:
        raise ValueError(f"crops of {crops.shape[1]} x {crops.shape[2]} pixels are smaller "
                         f"than the downscale factor {downscale}")
    return crops


def edge_map(crop: np.ndarray, config: EdgeDensityConfig = EdgeDensityConfig()) -> np.ndarray:
    """Unscaled pseudo-density of one (H, W, 3) uint8 RGB crop: (H // downscale,
    W // downscale) uint8, the blurred, downsized Canny edge image."""
    _check_crops(crop[None] if isinstance(crop, np.ndarray) else crop, config.downscale)
    gray = cv2.cvtColor(np.ascontiguousarray(crop), GRAYSCALE_CODES[config.grayscale])
    edges = cv2.Canny(gray, config.canny_low, config.canny_high)
    height, width = edges.shape
    small = cv2.resize(edges, (width // config.downscale, height // config.downscale))
    kernel = (config.blur_kernel_size, config.blur_kernel_size)
    return cv2.GaussianBlur(small, kernel, sigmaX=config.blur_sigma, sigmaY=config.blur_sigma)


def edge_pseudo_density(crops: np.ndarray,
                        config: EdgeDensityConfig = EdgeDensityConfig()) -> np.ndarray:
    """Pseudo-density maps of a batch of crops, scaled by the batch maximum.

    ``crops``: (B, H, W, 3) uint8 RGB. Returns (B, H // downscale, W // downscale) float32
    in [0, 1] (all zeros when no crop has an edge).
    """
    _check_crops(crops, config.downscale)
    maps = np.stack([edge_map(crop, config) for crop in crops]).astype(np.float32) / 255.0
    batch_max = float(maps.max())
    if batch_max <= 0.0:
        return np.zeros_like(maps)
    return maps / batch_max


def edge_pseudo_counts(crops: np.ndarray, config: EdgeDensityConfig = EdgeDensityConfig(),
                       cell_size: int = 8) -> np.ndarray:
    """Pseudo counts per cell: (B, cells) float32, cells as ``ot.cells.cell_counts`` orders
    them (3 × 3 = 9 per 224 crop with the defaults)."""
    return cell_counts_numpy(edge_pseudo_density(crops, config), cell_size).astype(np.float32)
