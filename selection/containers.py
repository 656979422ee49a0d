"""Typed inputs and results shared by every selection strategy.

Pool ids are **integer row indices** ``0 .. U-1`` into the pool arrays the caller passed; the
caller maps them back to its own image ids (file names, dataset indices). Indices keep the
library pure numpy and make "never a labeled image" structural: labeled images are not in
the pool arrays at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SelectionInputs", "SelectionResult"]


@dataclass(frozen=True)
class SelectionInputs:
    """What a strategy sees in one active-learning cycle. Arrays are converted to float64
    and validated on construction (before any expensive work).

    Attributes:
        pool_counts: ``(U,)`` predicted counts of the unlabeled pool, people.
        labeled_counts: ``(L,)`` ground-truth counts of the labeled images, people.
        pool_signatures: ``(U, S)`` grid signatures of the predicted density maps
            (``selection.grid_signatures``; S = 85 for LA = 3), or None.
        labeled_signatures: ``(L, S)`` grid signatures of the ground-truth maps, or None.
            Give both signature arrays or neither.
        pool_unlabeled_probability: ``(U,)`` in [0, 1], the distribution classifier's
            ``sigmoid(logit)`` = P(image is unlabeled) (labeled = 0, unlabeled = 1), or None.
            Only ``domain_classifier`` uses it.
        pool_true_counts: ``(U,)`` hidden ground-truth counts of the pool, people, or None.
            Only for oracle experiments (``count_threshold``); a real annotation run has none.
    """

    pool_counts: np.ndarray
    labeled_counts: np.ndarray
    pool_signatures: np.ndarray | None = None
    labeled_signatures: np.ndarray | None = None
    pool_unlabeled_probability: np.ndarray | None = None
    pool_true_counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        pool_counts = _real_array(self.pool_counts, "pool_counts", ndim=1)
        n_pool = pool_counts.shape[0]
        labeled_counts = _real_array(self.labeled_counts, "labeled_counts", ndim=1)
        object.__setattr__(self, "pool_counts", pool_counts)
        object.__setattr__(self, "labeled_counts", labeled_counts)
        if (self.pool_signatures is None) != (self.labeled_signatures is None):
            raise ValueError("give both pool_signatures and labeled_signatures, or neither")
        if self.pool_signatures is not None:
            pool_signatures = _real_array(self.pool_signatures, "pool_signatures", ndim=2)
            labeled_signatures = _real_array(self.labeled_signatures, "labeled_signatures", ndim=2)
            if pool_signatures.shape[0] != n_pool:
                raise ValueError(
                    f"pool_signatures must have {n_pool} rows like pool_counts, got shape "
                    f"{pool_signatures.shape}"
                )
            expected = (labeled_counts.shape[0], pool_signatures.shape[1])
            if labeled_signatures.shape != expected:
                raise ValueError(
                    f"labeled_signatures must have shape {expected} (labeled_counts rows, "
                    f"pool_signatures columns), got {labeled_signatures.shape}"
                )
            object.__setattr__(self, "pool_signatures", pool_signatures)
            object.__setattr__(self, "labeled_signatures", labeled_signatures)
        if self.pool_unlabeled_probability is not None:
            probability = _real_array(
                self.pool_unlabeled_probability, "pool_unlabeled_probability", ndim=1
            )
            _check_rows(probability, n_pool, "pool_unlabeled_probability")
            if ((probability < 0) | (probability > 1)).any():
                raise ValueError("pool_unlabeled_probability must lie in [0, 1]")
            object.__setattr__(self, "pool_unlabeled_probability", probability)
        if self.pool_true_counts is not None:
            true_counts = _real_array(self.pool_true_counts, "pool_true_counts", ndim=1)
            _check_rows(true_counts, n_pool, "pool_true_counts")
            object.__setattr__(self, "pool_true_counts", true_counts)

    @property
    def n_pool(self) -> int:
        """U, the number of unlabeled images."""
        return int(self.pool_counts.shape[0])

    @property
    def n_labeled(self) -> int:
        """L, the number of labeled images."""
        return int(self.labeled_counts.shape[0])


@dataclass(frozen=True)
class SelectionResult:
    """What a strategy picked, and why, for reports.

    Attributes:
        strategy: registry name of the strategy.
        selected: ``(k,)`` int64 pool row indices in pick order, distinct, ``k = min(m, U)``.
        selected_partition: ``(k,)`` int64 partition of each pick (-1: no partitions).
        selected_score: ``(k,)`` float64 score of each pick (GDSIM, count difference,
            classifier probability, count; NaN for ``random``).
        selected_probability: ``(k,)`` float64 probability the pick had at the draw that
            chose it (1.0 for deterministic picks).
        pool_partition: ``(U,)`` int64 partition of every pool image (-1: no partitions).
        pool_score: ``(U,)`` float64 score of every pool image.
        pool_probability: ``(U,)`` float64 probability of every pool image at the first draw
            of its group (its partition, or the whole pool); deterministic strategies give 1
            to picks and 0 to the rest.
        labeled_partition: ``(L,)`` int64 partition of every labeled image (-1: none).
        partition_breaks: ``(P-1,)`` float64 inner breaks, people (empty without partitions).
        n_partitions: P (0 without partitions).
        partition_method: how partitions were made (``"none"`` without partitions).
    """

    strategy: str
    selected: np.ndarray
    selected_partition: np.ndarray
    selected_score: np.ndarray
    selected_probability: np.ndarray
    pool_partition: np.ndarray
    pool_score: np.ndarray
    pool_probability: np.ndarray
    labeled_partition: np.ndarray
    partition_breaks: np.ndarray
    n_partitions: int
    partition_method: str


def _real_array(values: np.ndarray, name: str, *, ndim: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return array


def _check_rows(array: np.ndarray, n_rows: int, name: str) -> None:
    if array.shape[0] != n_rows:
        raise ValueError(f"{name} must have {n_rows} rows like pool_counts, got {array.shape[0]}")
