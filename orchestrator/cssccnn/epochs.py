"""Choosing the epoch of a CSS-CCNN stage without test labels (paper section 3.3, reference code).

Two rules, both fed one validation measurement per epoch, both plain state that checkpoints:

* :class:`MovingAverageSelector` (CSS-CCNN stage 2; also stage 1 and the supervised baselines
  with ``window = 1``): the smoothed value is the mean of the last ``window`` values; an epoch
  whose smoothed value is below every earlier one becomes the chosen epoch; training stops when
  ``patience`` epochs in a row bring no improvement.
* :class:`PlusPlusSelector` (CSS-CCNN++): sparse and dense validation losses are smoothed
  separately (window 10); the criterion is ``sparse + dense_weight x dense``; if the smoothed
  sparse loss ever exceeds its own minimum by more than ``divergence``, training stops and the
  epoch of that sparse minimum is chosen instead.

Smoothing starts once ``min(window, epochs)`` values exist (the reference starts one epoch
later, after ``window + 1``; ours lets a stage shorter than the window still choose an epoch).
``update`` returns the *slots* the current epoch now holds — the caller keeps a copy of the
model per slot and, at the end, uses the one named by ``chosen_slot``.
"""

from __future__ import annotations

import dataclasses
import math

CHOSEN, SPARSE = "chosen", "sparse"


def _mean_last(values: list[float], window: int) -> float:
    tail = values[-window:]
    return sum(tail) / len(tail)


@dataclasses.dataclass
class MovingAverageSelector:
    """Minimise the moving average of one value per epoch (lower is better).

    Attributes:
        window: moving-average length (>= 1).
        patience: stop after this many epochs without improvement; ``None`` never stops.
        start: first epoch count at which a smoothed value is compared (``min(window, epochs)``).
    """

    window: int
    patience: int | None
    start: int
    values: list[float] = dataclasses.field(default_factory=list)
    chosen_epoch: int = 0
    best_smoothed: float = math.inf
    since_best: int = 0
    stopped: bool = False

    def __post_init__(self):
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience must be >= 0 or None, got {self.patience}")

    @property
    def chosen_slot(self) -> str:
        return CHOSEN

    @property
    def final_epoch(self) -> int:
        """The epoch whose model the stage returns (0 = none yet)."""
        return self.chosen_epoch

    def update(self, epoch: int, value: float) -> list[str]:
        """Record the validation ``value`` of ``epoch`` (1-based, consecutive); returns
        ``["chosen"]`` when this epoch becomes the chosen one, else ``[]``."""
        if not math.isfinite(value):
            raise ValueError(f"validation value of epoch {epoch} is not finite: {value}")
        self.values.append(float(value))
        if len(self.values) < self.start:
            return []
        smoothed = _mean_last(self.values, self.window)
        if smoothed < self.best_smoothed:
            self.best_smoothed, self.chosen_epoch, self.since_best = smoothed, epoch, 0
            return [CHOSEN]
        self.since_best += 1
        if self.patience is not None and self.since_best > self.patience:
            self.stopped = True
        return []

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PlusPlusSelector:
    """The CSS-CCNN++ rule over (sparse, dense) validation losses per epoch."""

    window: int
    patience: int | None
    start: int
    dense_weight: float
    divergence: float
    sparse: list[float] = dataclasses.field(default_factory=list)
    dense: list[float] = dataclasses.field(default_factory=list)
    chosen_epoch: int = 0
    best_smoothed: float = math.inf
    sparse_epoch: int = 0
    best_sparse: float = math.inf
    since_best: int = 0
    stopped: bool = False
    diverged: bool = False

    def __post_init__(self):
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")

    @property
    def chosen_slot(self) -> str:
        return SPARSE if self.diverged else CHOSEN

    @property
    def final_epoch(self) -> int:
        """The epoch whose model the stage returns."""
        return self.sparse_epoch if self.diverged else self.chosen_epoch

    def update(self, epoch: int, sparse: float, dense: float) -> list[str]:
        """Record one epoch's sparse and dense validation losses; returns the slots it holds
        (``"sparse"`` for a new sparse minimum, ``"chosen"`` for a new best criterion)."""
        if not (math.isfinite(sparse) and math.isfinite(dense)):
            raise ValueError(f"validation losses of epoch {epoch} are not finite: {sparse}, {dense}")
        self.sparse.append(float(sparse))
        self.dense.append(float(dense))
        if len(self.sparse) < self.start:
            return []
        smooth_sparse = _mean_last(self.sparse, self.window)
        smooth_dense = _mean_last(self.dense, self.window)
        slots = []
        if smooth_sparse < self.best_sparse:
            self.best_sparse, self.sparse_epoch = smooth_sparse, epoch
            slots.append(SPARSE)
        criterion = smooth_sparse + self.dense_weight * smooth_dense
        if smooth_sparse > self.best_sparse + self.divergence:
            self.stopped = self.diverged = True
        elif criterion < self.best_smoothed:
            self.best_smoothed, self.chosen_epoch, self.since_best = criterion, epoch, 0
            slots.append(CHOSEN)
        else:
            self.since_best += 1
            if self.patience is not None and self.since_best > self.patience:
                self.stopped = True
        return slots

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)
