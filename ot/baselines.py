"""Prior-only count predictors for the CSS-CCNN tables: CCNN Mean and CCNN Pprior.

Both turn the per-cell prior into per-image counts with ``prior.cells_per_image`` (the same
cells × crops that turned C_fmax into the per-cell maximum, 64 in the reference).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ot.prior import PowerLawPrior, check_generator, check_sample_count

PriorDrawMode = Literal["sum_of_cells", "scaled_cell"]
PRIOR_DRAW_MODES: tuple[str, ...] = ("sum_of_cells", "scaled_cell")


def prior_mean_image_count(prior: PowerLawPrior) -> float:
    """Expected people per image under the prior: mean count per cell × cells per image."""
    return prior.mean() * prior.cells_per_image


def mean_count_predictions(prior: PowerLawPrior, num_images: int) -> np.ndarray:
    """CCNN Mean: (num_images,) float64, every image predicted at the prior's mean count."""
    count = check_sample_count(num_images, "num_images")
    return np.full(count, prior_mean_image_count(prior), dtype=np.float64)


def prior_draw_predictions(prior: PowerLawPrior, num_images: int, rng: np.random.Generator,
                           mode: PriorDrawMode = "sum_of_cells") -> np.ndarray:
    """CCNN Pprior: one random count per image drawn from the prior, (num_images,) float64.

    ``"sum_of_cells"`` (default) draws ``cells_per_image`` independent cells and sums them
    (an image made of prior cells); ``"scaled_cell"`` draws one cell and multiplies it by
    ``cells_per_image`` (far more spread). The paper does not say which; on ShanghaiTech A's
    test set they give MAE about 258 and 350 (paper: 272.2).
    """
    count = check_sample_count(num_images, "num_images")
    check_generator(rng)
    if mode not in PRIOR_DRAW_MODES:
        raise ValueError(f"mode must be one of {PRIOR_DRAW_MODES}, got {mode!r}")
    cells = prior.cells_per_image
    if mode == "scaled_cell":
        return prior.sample(count, rng) * cells
    return prior.sample(count * cells, rng).reshape(count, cells).sum(axis=1)
