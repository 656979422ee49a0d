"""CSS-CCNN++ sparse/dense split and its loss (paper section 3.4, eq. 4).

Cells whose edge pseudo count is below the 30th percentile of the batch are "sparse", the rest
"dense"; prior samples are split at their own 30th percentile. The loss is
Sinkhorn(sparse predictions, sparse prior) + Sinkhorn(dense predictions, dense prior), or a
single Sinkhorn over everything when too few cells are sparse.

The percentile follows the reference exactly: with n values and k = int(0.7 · n), the
threshold is the k-th largest value and "sparse" means strictly below it. Without ties that is
n - k values (87 of 288 cells, 471 of 1568 prior samples); ties at the threshold go to "dense",
so a batch whose pseudo counts are mostly zero can have no sparse cell at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ot.sinkhorn import SinkhornConfig, sinkhorn_loss


def _check_fraction(sparse_fraction: float) -> float:
    if not (isinstance(sparse_fraction, (int, float)) and 0.0 < sparse_fraction < 1.0):
        raise ValueError(f"sparse_fraction must lie in (0, 1), got {sparse_fraction!r}")
    return float(sparse_fraction)


def dense_rank(num_values: int, sparse_fraction: float = 0.3) -> int:
    """k, the rank from the top of the threshold value: int(round(1 - fraction, 2) · n)."""
    dense_fraction = float(f"{1.0 - _check_fraction(sparse_fraction):.2f}")
    return int(dense_fraction * num_values)


def sparse_mask(values: torch.Tensor | np.ndarray, sparse_fraction: float = 0.3,
                ) -> torch.Tensor | np.ndarray:
    """True where a value lies strictly below the k-th largest value (k = ``dense_rank``).

    ``values``: 1-D tensor or array (any shape is flattened). Returns a bool mask of the same
    kind and of shape (N,); all False when k is 0.
    """
    if isinstance(values, torch.Tensor):
        flat = values.detach().reshape(-1)
        rank = dense_rank(flat.numel(), sparse_fraction)
        if rank == 0:
            return torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
        threshold = torch.kthvalue(flat, flat.numel() - rank + 1).values
        return flat < threshold
    if isinstance(values, np.ndarray):
        flat = values.reshape(-1)
        rank = dense_rank(flat.size, sparse_fraction)
        if rank == 0:
            return np.zeros(flat.size, dtype=bool)
        threshold = np.partition(flat, flat.size - rank)[flat.size - rank]
        return flat < threshold
    raise ValueError(f"values must be a torch.Tensor or numpy array, got {type(values).__name__}")


@dataclass(frozen=True)
class SplitSinkhornLoss:
    """Result of ``css_ccnn_plus_plus_loss``.

    ``total`` is the scalar to backpropagate. ``sparse`` and ``dense`` are its two terms
    (None when the single-term fallback was used, ``used_split`` False). The counts say how
    many prediction cells and prior samples fell in the sparse group.
    """

    total: torch.Tensor
    sparse: torch.Tensor | None
    dense: torch.Tensor | None
    num_sparse_cells: int
    num_sparse_prior_samples: int
    used_split: bool


def css_ccnn_plus_plus_loss(predicted_counts: torch.Tensor,
                            pseudo_counts: torch.Tensor | np.ndarray,
                            prior_samples: torch.Tensor | np.ndarray,
                            config: SinkhornConfig = SinkhornConfig(),
                            sparse_fraction: float = 0.3,
                            min_sparse_cells: int = 3) -> SplitSinkhornLoss:
    """CSS-CCNN++ loss (eq. 4) for one batch.

    ``predicted_counts``: (B, cells) or any shape, people per cell, with gradient.
    ``pseudo_counts``: same number of elements, in the same order (``edge_pseudo_counts``).
    ``prior_samples``: (M,) prior draws. The split is used when at least
    ``min_sparse_cells`` cells (3: the reference requires more than 2) are sparse and every
    group is non-empty; otherwise ``total`` is one Sinkhorn over all cells and samples.
    """
    _check_fraction(sparse_fraction)
    if isinstance(min_sparse_cells, bool) or not isinstance(min_sparse_cells, int) \
            or min_sparse_cells < 1:
        raise ValueError(f"min_sparse_cells must be an integer >= 1, got {min_sparse_cells!r}")
    if not isinstance(predicted_counts, torch.Tensor):
        raise ValueError(f"predicted_counts must be a torch.Tensor, "
                         f"got {type(predicted_counts).__name__}")
    if isinstance(pseudo_counts, np.ndarray):
        pseudo_counts = torch.from_numpy(np.ascontiguousarray(pseudo_counts))
    if isinstance(prior_samples, np.ndarray):
        prior_samples = torch.from_numpy(np.ascontiguousarray(prior_samples))
    if not isinstance(pseudo_counts, torch.Tensor) or not isinstance(prior_samples, torch.Tensor):
        raise ValueError("pseudo_counts and prior_samples must be tensors or numpy arrays")
    if pseudo_counts.numel() != predicted_counts.numel():
        raise ValueError(f"pseudo_counts has {pseudo_counts.numel()} values but "
                         f"predicted_counts has {predicted_counts.numel()}")
    predictions = predicted_counts.reshape(-1)
    prior = prior_samples.detach().reshape(-1).to(predictions.device)
    cell_is_sparse = sparse_mask(pseudo_counts.detach().reshape(-1).to(predictions.device),
                                 sparse_fraction)
    sample_is_sparse = sparse_mask(prior, sparse_fraction)
    num_sparse_cells = int(cell_is_sparse.sum())
    num_sparse_samples = int(sample_is_sparse.sum())
    can_split = (num_sparse_cells >= min_sparse_cells
                 and num_sparse_cells < predictions.numel()
                 and 0 < num_sparse_samples < prior.numel())
    if not can_split:
        total = sinkhorn_loss(predictions, prior, config)
        return SplitSinkhornLoss(total=total, sparse=None, dense=None,
                                 num_sparse_cells=num_sparse_cells,
                                 num_sparse_prior_samples=num_sparse_samples, used_split=False)
    sparse = sinkhorn_loss(predictions[cell_is_sparse], prior[sample_is_sparse], config)
    dense = sinkhorn_loss(predictions[~cell_is_sparse], prior[~sample_is_sparse], config)
    return SplitSinkhornLoss(total=sparse + dense, sparse=sparse, dense=dense,
                             num_sparse_cells=num_sparse_cells,
                             num_sparse_prior_samples=num_sparse_samples, used_split=True)

