"""Truncated power law p(c) ∝ c^-alpha · exp(-lambda·c) on [1, ∞): tail integral, CDFs and the
reference's choice of lambda and of the shift threshold.

All counts are people per cell (floats). The one integral everything is built on is the
unnormalised tail

    T(x) = ∫_x^∞ c^-alpha exp(-lambda c) dc = lambda^(alpha-1) Γ(1-alpha, lambda x)
         = x^(1-alpha) E_alpha(lambda x),

with E_n the generalised exponential integral (E1 for alpha = 1, E2 for alpha = 2). Integer
alpha >= 0 uses ``scipy.special.expn`` and non-integer alpha < 1 the regularised incomplete
gamma (both exact to double precision, vectorised); non-integer alpha > 1 uses
``mpmath.expint``, imported only then (about 0.3 ms per value).

Two CDFs exist, and the choice matters:

- ``"unnormalised"`` (default, the reference's): ``1 - T(x)``. This is what the powerlaw
  package's ``Truncated_Power_Law._cdf_base_function`` returns and what the CSS-CCNN reference
  code (``get_cdf``) thresholds to pick lambda and the shift. It is *not* a probability: it
  ignores the normaliser Z = T(1), so it equals the true CDF only when Z = 1.
- ``"normalised"``: the true CDF ``1 - T(x) / T(1)`` of the distribution on [1, ∞), which is
  what powerlaw's public ``cdf`` returns.

With alpha = 2 and SHA's numbers (C_fmax 3000, S 482) the unnormalised rule gives lambda 0.028 and
a shift threshold 1.21 that holds 19 % of the mass; the normalised rule gives lambda 0.030 and
threshold 1.35 holding 28 %. With alpha = 1 (UCF_CC_50) the two differ much more (threshold 9.07
holding 72 % against 2.39 holding 28 %), because there Z = E1(lambda) is far from 1.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np
from scipy import special

CdfMode = Literal["unnormalised", "normalised"]
CDF_MODES: tuple[str, ...] = ("unnormalised", "normalised")


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_power_law_parameters(alpha: float, lam: float) -> None:
    """Raise ValueError unless alpha >= 0 and lambda > 0 are finite numbers."""
    if not (_is_real(alpha) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    if not (_is_real(lam) and math.isfinite(lam) and lam > 0):
        raise ValueError(f"lam (lambda) must be a finite number > 0, got {lam!r}")


def check_cdf_mode(cdf_mode: str) -> None:
    if cdf_mode not in CDF_MODES:
        raise ValueError(f"cdf_mode must be one of {CDF_MODES}, got {cdf_mode!r}")


def _generalised_exponential_integral(order: float, z: np.ndarray) -> np.ndarray:
    """E_order(z) for z > 0, float64, same shape as ``z``."""
    if float(order).is_integer() and order >= 0:
        return special.expn(int(order), z)
    if order < 1.0:  # E_p(z) = z^(p-1) Γ(1-p, z) with 1 - p > 0: regularised gamma
        shape = 1.0 - order
        return z ** (order - 1.0) * special.gamma(shape) * special.gammaincc(shape, z)
    import mpmath  # non-integer orders above 1 only; exact to double precision

    as_float = np.frompyfunc(lambda value: float(mpmath.expint(order, value)), 1, 1)
    return np.asarray(as_float(z), dtype=np.float64)


def power_law_tail_integral(x: np.ndarray | float, alpha: float, lam: float,
                            ) -> np.ndarray:
    """T(x) = ∫_x^∞ c^-alpha exp(-lam c) dc, float64, same shape as ``x``.

    ``x`` must be > 0 (counts per cell). Underflows to 0 far in the tail.
    """
    check_power_law_parameters(alpha, lam)
    x_array = np.asarray(x, dtype=np.float64)
    if np.any(~np.isfinite(x_array)) or np.any(x_array <= 0):
        raise ValueError("x must be finite and > 0 for the tail integral, "
                         f"got min {np.min(x_array) if x_array.size else 'n/a'}")
    return x_array ** (1.0 - alpha) * _generalised_exponential_integral(alpha, lam * x_array)


def power_law_pdf(x: np.ndarray | float, alpha: float, lam: float) -> np.ndarray:
    """Normalised density on [1, ∞) (0 below 1), float64, same shape as ``x``."""
    x_array = np.asarray(x, dtype=np.float64)
    normaliser = float(power_law_tail_integral(1.0, alpha, lam))
    safe = np.where(x_array >= 1.0, x_array, 1.0)
    density = safe ** (-alpha) * np.exp(-lam * safe) / normaliser
    return np.where(x_array >= 1.0, density, 0.0)


def power_law_cdf(x: np.ndarray | float, alpha: float, lam: float,
                  cdf_mode: CdfMode = "normalised") -> np.ndarray:
    """CDF of the truncated power law on [1, ∞), float64, same shape as ``x``.

    ``cdf_mode="normalised"`` is the true CDF (0 below 1). ``"unnormalised"`` is the
    reference's ``1 - T(x)`` (see the module docstring); below 1 it is clamped at x = 1.
    """
    check_cdf_mode(cdf_mode)
    x_array = np.asarray(x, dtype=np.float64)
    clamped = np.maximum(x_array, 1.0)
    tail = power_law_tail_integral(clamped, alpha, lam)
    if cdf_mode == "unnormalised":
        return 1.0 - tail
    normaliser = float(power_law_tail_integral(1.0, alpha, lam))
    return np.where(x_array >= 1.0, 1.0 - tail / normaliser, 0.0)


def _first_grid_index(predicate, num_points: int) -> int | None:
    """Smallest k in [0, num_points) with predicate(k) True, for a monotone predicate."""
    if num_points <= 0 or not predicate(num_points - 1):
        return None
    low, high = 0, num_points - 1  # predicate(high) is True
    while low < high:
        middle = (low + high) // 2
        if predicate(middle):
            high = middle
        else:
            low = middle + 1
    return low


def choose_lambda(c_max: float, num_images: int, alpha: float,
                  cdf_mode: CdfMode = "unnormalised", lambda_step: float = 0.001,
                  lambda_max: float = 10.0) -> float:
    """Smallest lambda on the grid lambda_step, 2·lambda_step, ... <= lambda_max with
    CDF(c_max) > 1 - 1/num_images (paper section 3.1, reference ``get_lambda``).

    ``c_max`` is the maximum count per *cell* (C_fmax / (cells per crop × crops per image)).
    The CDF grows with lambda, so a bisection over the grid returns the same value as the
    reference's linear scan. The reference scans only up to 0.099 (and returns None beyond);
    here the grid runs to ``lambda_max`` and a ValueError says when even that is too small.
    """
    check_cdf_mode(cdf_mode)
    if not (_is_real(c_max) and math.isfinite(c_max) and c_max > 1.0):
        raise ValueError(f"c_max (max count per cell) must be finite and > 1, got {c_max!r}")
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) \
            or num_images < 1:
        raise ValueError(f"num_images must be an integer >= 1, got {num_images!r}")
    if not (math.isfinite(lambda_step) and lambda_step > 0):
        raise ValueError(f"lambda_step must be finite and > 0, got {lambda_step!r}")
    if not (math.isfinite(lambda_max) and lambda_max >= lambda_step):
        raise ValueError(f"lambda_max must be >= lambda_step, got {lambda_max!r}")
    check_power_law_parameters(alpha, lambda_step)
    target = 1.0 - 1.0 / num_images
    num_points = int(math.floor(lambda_max / lambda_step + 1e-9))

    def grid_value(k: int) -> float:
        return round((k + 1) * lambda_step, 12)

    def satisfied(k: int) -> bool:
        return float(power_law_cdf(c_max, alpha, grid_value(k), cdf_mode)) > target

    index = _first_grid_index(satisfied, num_points)
    if index is None:
        raise ValueError(
            f"no lambda <= lambda_max={lambda_max} gives {cdf_mode} CDF({c_max}) > "
            f"1 - 1/{num_images} for alpha={alpha}; raise lambda_max")
    return grid_value(index)


def choose_shift_threshold(alpha: float, lam: float, cdf_mode: CdfMode = "unnormalised",
                           cdf_level: float = 0.28, grid_start: float = 1.01,
                           grid_step: float = 0.01, grid_stop: float = 10.0) -> float:
    """First value of the grid grid_start, grid_start + grid_step, ... (< grid_stop) whose
    CDF exceeds ``cdf_level`` (reference ``get_shift_thresh``: 1.01, 1.02, ..., 9.99 and 0.28).

    Prior samples below this threshold are redistributed uniformly on [0, threshold].
    Raises ValueError when no grid value qualifies (the reference would return None).
    """
    check_cdf_mode(cdf_mode)
    check_power_law_parameters(alpha, lam)
    if not (0.0 < cdf_level < 1.0):
        raise ValueError(f"cdf_level must lie in (0, 1), got {cdf_level!r}")
    if not (math.isfinite(grid_start) and grid_start >= 1.0):
        raise ValueError(f"grid_start must be finite and >= 1, got {grid_start!r}")
    if not (math.isfinite(grid_step) and grid_step > 0):
        raise ValueError(f"grid_step must be finite and > 0, got {grid_step!r}")
    if not (math.isfinite(grid_stop) and grid_stop > grid_start):
        raise ValueError(f"grid_stop must be > grid_start, got {grid_stop!r}")
    num_points = int(math.ceil((grid_stop - grid_start) / grid_step - 1e-9))

    def grid_value(k: int) -> float:
        return round(grid_start + k * grid_step, 10)

    def satisfied(k: int) -> bool:
        return float(power_law_cdf(grid_value(k), alpha, lam, cdf_mode)) > cdf_level

    index = _first_grid_index(satisfied, num_points)
    if index is None:
        raise ValueError(
            f"no shift threshold in [{grid_start}, {grid_stop}) has {cdf_mode} CDF > "
            f"{cdf_level} for alpha={alpha}, lambda={lam}; raise grid_stop")
    return grid_value(index)
