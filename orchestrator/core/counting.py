"""Whole-image counting with a density network, and the two numbers every table prints.

One image is normalised for its network (``model.normalize``), run whole at batch size one (the
networks zero-pad to a multiple of 8), and its count is the sum of the 1/8-resolution density.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from orchestrator.core.execution import to_device


def predict_density(model: nn.Module, image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(h, w)`` float density at 1/8 resolution (people per output pixel) of one ``(H, W, 3)``
    uint8 RGB image; ``model`` must be in eval mode on ``device`` (the normalised image is
    pinned and copied without blocking on CUDA; the density stays on ``device``)."""
    with torch.inference_mode():
        return model(to_device(model.normalize(image), device))[0, 0]


def count_of(density: torch.Tensor) -> float:
    """Predicted count of a density map: its sum, in float64."""
    return float(density.double().sum())


def predict_count(model: nn.Module, image: np.ndarray, device: torch.device | str = "cpu") -> float:
    """Predicted count of one ``(H, W, 3) uint8`` RGB image (whole image, no resizing)."""
    return count_of(predict_density(model, image, device))


def mae_rmse(predicted, true) -> tuple[float, float]:
    """MAE and RMSE of counts, float64 (the papers print RMSE under the name "MSE")."""
    err = np.asarray(predicted, np.float64) - np.asarray(true, np.float64)
    return float(np.abs(err).mean()), float(np.sqrt((err ** 2).mean()))
