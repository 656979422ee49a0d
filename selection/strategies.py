"""Selection strategies of the AL-AC paper behind one interface.

Every strategy is a small frozen dataclass (its parameters) with one method::

    strategy.select(inputs: SelectionInputs, m: int, rng: np.random.Generator) -> SelectionResult

which picks ``k = min(m, U)`` distinct pool rows (an empty pool gives an empty selection).
``rng`` is the only source of randomness: the same inputs and the same Generator state give
the same picks.

=================  ================================  =======================================
name               partitions                        pick
=================  ================================  =======================================
random             none                              uniform, without replacement (RS)
pssw               Jenks of predicted counts         one per partition, P ~ GDSIM
even_partition     m equal-width count ranges        one per partition, P ~ GDSIM
global_diff        Jenks of predicted counts         one per partition, P ~ min |count diff|
domain_classifier  none                              m highest P(unlabeled) (AL-AC-v)
count_threshold    count <= threshold / > threshold  uniform among counts > threshold
=================  ================================  =======================================

Partition and GDSIM edge cases are documented in ``selection.partitions``,
``selection.gdsim`` and ``selection.draws``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np

from selection.containers import SelectionInputs, SelectionResult
from selection.draws import draw_per_partition
from selection.gdsim import DEFAULT_MAX_BLOCK_ELEMENTS, gdsim
from selection.partitions import (
    DEFAULT_EXACT_JENKS_MAX_VALUES,
    DEFAULT_JENKS_MAX_SEGMENTS,
    Partitioning,
    partition_even,
    partition_jenks,
)

__all__ = [
    "SelectionStrategy",
    "RandomSelection",
    "PsswSelection",
    "EvenPartitionSelection",
    "GlobalDiffSelection",
    "DomainClassifierSelection",
    "CountThresholdSelection",
]


class SelectionStrategy(ABC):
    """One way of choosing the next images to annotate."""

    name: ClassVar[str]

    def select(
        self, inputs: SelectionInputs, m: int, rng: np.random.Generator
    ) -> SelectionResult:
        """Pick ``min(m, U)`` pool rows; see the module docstring."""
        if not isinstance(inputs, SelectionInputs):
            raise ValueError(f"inputs must be a SelectionInputs, got {type(inputs).__name__}")
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"m must be a positive integer, got {m!r}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self._check_inputs(inputs)
        return self._select(inputs, int(m), min(int(m), inputs.n_pool), rng)

    def _check_inputs(self, inputs: SelectionInputs) -> None:
        """Raise ValueError when ``inputs`` lack what this strategy needs."""

    @abstractmethod
    def _select(
        self, inputs: SelectionInputs, m: int, n_picks: int, rng: np.random.Generator
    ) -> SelectionResult:
        """Pick ``n_picks = min(m, U)`` images (inputs already validated)."""

    def _unpartitioned_result(
        self,
        inputs: SelectionInputs,
        selected: np.ndarray,
        selected_probability: np.ndarray,
        pool_score: np.ndarray,
        pool_probability: np.ndarray,
    ) -> SelectionResult:
        selected = np.asarray(selected, dtype=np.int64)
        return SelectionResult(
            strategy=self.name,
            selected=selected,
            selected_partition=np.full(selected.size, -1, dtype=np.int64),
            selected_score=pool_score[selected],
            selected_probability=np.asarray(selected_probability, dtype=np.float64),
            pool_partition=np.full(inputs.n_pool, -1, dtype=np.int64),
            pool_score=pool_score,
            pool_probability=pool_probability,
            labeled_partition=np.full(inputs.n_labeled, -1, dtype=np.int64),
            partition_breaks=np.empty(0, dtype=np.float64),
            n_partitions=0,
            partition_method="none",
        )


@dataclass(frozen=True)
class RandomSelection(SelectionStrategy):
    """RS baseline: ``min(m, U)`` pool images uniformly at random, without replacement."""

    name: ClassVar[str] = "random"

    def _select(self, inputs, m, n_picks, rng):
        n_pool = inputs.n_pool
        selected = rng.choice(n_pool, size=n_picks, replace=False) if n_pool else []
        return self._unpartitioned_result(
            inputs,
            selected=selected,
            selected_probability=1.0 / (n_pool - np.arange(n_picks)),
            pool_score=np.full(n_pool, np.nan),
            pool_probability=np.full(n_pool, 1.0 / n_pool if n_pool else 0.0),
        )


@dataclass(frozen=True)
class _PartitionedWeightedSelection(SelectionStrategy):
    """Partition the pool by count, score every image, draw one per partition by score."""

    exact_jenks_max_values: int = DEFAULT_EXACT_JENKS_MAX_VALUES
    jenks_max_segments: int = DEFAULT_JENKS_MAX_SEGMENTS
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS

    def __post_init__(self) -> None:
        for field_name in ("exact_jenks_max_values", "jenks_max_segments", "max_block_elements"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{field_name} must be a positive integer, got {value!r}")

    @abstractmethod
    def _partition(self, inputs: SelectionInputs, m: int) -> Partitioning: ...

    @abstractmethod
    def _scores(self, inputs: SelectionInputs, partitioning: Partitioning) -> np.ndarray: ...

    def _jenks(self, inputs: SelectionInputs, m: int) -> Partitioning:
        return partition_jenks(
            inputs.pool_counts,
            inputs.labeled_counts,
            m,
            exact_max_values=self.exact_jenks_max_values,
            max_segments=max(self.jenks_max_segments, 3 * m),
        )

    def _gdsim(self, inputs: SelectionInputs, partitioning: Partitioning) -> np.ndarray:
        return gdsim(
            inputs.pool_signatures,
            inputs.labeled_signatures,
            partitioning.pool_partition,
            partitioning.labeled_partition,
            max_block_elements=self.max_block_elements,
        ).score

    def _check_signatures(self, inputs: SelectionInputs) -> None:
        if inputs.pool_signatures is None:
            raise ValueError(
                f"strategy {self.name!r} needs pool_signatures and labeled_signatures"
            )

    def _select(self, inputs, m, n_picks, rng):
        if inputs.n_pool == 0:
            return self._unpartitioned_result(inputs, [], [], np.empty(0), np.empty(0))
        partitioning = self._partition(inputs, m)
        pool_score = self._scores(inputs, partitioning)
        draws = draw_per_partition(partitioning.pool_partition, pool_score, n_picks, rng)
        return SelectionResult(
            strategy=self.name,
            selected=draws.selected,
            selected_partition=partitioning.pool_partition[draws.selected],
            selected_score=pool_score[draws.selected],
            selected_probability=draws.probability,
            pool_partition=partitioning.pool_partition,
            pool_score=pool_score,
            pool_probability=draws.first_probability,
            labeled_partition=partitioning.labeled_partition,
            partition_breaks=partitioning.inner_breaks,
            n_partitions=partitioning.n_partitions,
            partition_method=partitioning.method,
        )


@dataclass(frozen=True)
class PsswSelection(_PartitionedWeightedSelection):
    """PSSW (AL-AC 3.3): Jenks partitions of predicted counts, GDSIM-weighted draw in each."""

    name: ClassVar[str] = "pssw"

    def _check_inputs(self, inputs):
        self._check_signatures(inputs)

    def _partition(self, inputs, m):
        return self._jenks(inputs, m)

    def _scores(self, inputs, partitioning):
        return self._gdsim(inputs, partitioning)


@dataclass(frozen=True)
class EvenPartitionSelection(_PartitionedWeightedSelection):
    """Even Partition ablation: m equal-width count ranges instead of Jenks, GDSIM weights."""

    name: ClassVar[str] = "even_partition"

    def _check_inputs(self, inputs):
        self._check_signatures(inputs)

    def _partition(self, inputs, m):
        return partition_even(inputs.pool_counts, inputs.labeled_counts, m)

    def _scores(self, inputs, partitioning):
        return self._gdsim(inputs, partitioning)


@dataclass(frozen=True)
class GlobalDiffSelection(_PartitionedWeightedSelection):
    """Global Diff ablation: Jenks partitions, weights = min |predicted - labeled true count|
    over the labeled images of the partition (GDSIM restricted to level 0 of one value)."""

    name: ClassVar[str] = "global_diff"

    def _partition(self, inputs, m):
        return self._jenks(inputs, m)

    def _scores(self, inputs, partitioning):
        return gdsim(
            inputs.pool_counts[:, None],
            inputs.labeled_counts[:, None],
            partitioning.pool_partition,
            partitioning.labeled_partition,
            max_block_elements=self.max_block_elements,
        ).score


#: AL-AC-v's end of the classifier's ranking (``pick``): ``most_unlabeled`` = the highest
#: P(unlabeled), the paper's (its appendix labels unlabeled 0 / labeled 1 and takes "the lowest
#: probabilities", i.e. the lowest P(labeled), as VAAL does); ``most_labeled`` = the lowest.
DOMAIN_PICKS = ("most_unlabeled", "most_labeled")


@dataclass(frozen=True)
class DomainClassifierSelection(SelectionStrategy):
    """AL-AC-v: the ``min(m, U)`` images the distribution classifier is most sure are unlabeled
    (the highest P(unlabeled); ``pick="most_labeled"``: the lowest, those most like labeled
    data). Deterministic; ties go to the lower pool row. Scores are P(unlabeled)."""

    name: ClassVar[str] = "domain_classifier"
    pick: Literal["most_unlabeled", "most_labeled"] = "most_unlabeled"

    def __post_init__(self) -> None:
        if self.pick not in DOMAIN_PICKS:
            raise ValueError(f"domain_classifier pick must be one of {list(DOMAIN_PICKS)}, got {self.pick!r}")

    def _check_inputs(self, inputs):
        if inputs.pool_unlabeled_probability is None:
            raise ValueError(
                f"strategy {self.name!r} needs pool_unlabeled_probability (the distribution "
                "classifier's P(unlabeled) per pool image)"
            )

    def _select(self, inputs, m, n_picks, rng):
        probability = inputs.pool_unlabeled_probability
        key = -probability if self.pick == "most_unlabeled" else probability
        order = np.lexsort((np.arange(inputs.n_pool), key))
        selected = order[:n_picks]
        pool_probability = np.zeros(inputs.n_pool)
        pool_probability[selected] = 1.0
        return self._unpartitioned_result(
            inputs,
            selected=selected,
            selected_probability=np.ones(n_picks),
            pool_score=probability.copy(),
            pool_probability=pool_probability,
        )


@dataclass(frozen=True)
class CountThresholdSelection(SelectionStrategy):
    """The paper's "only label images with over 200 heads" experiment (SHB, section 4.2).

    Picks uniformly at random among pool images whose count is ``> threshold`` (partition 1;
    the rest are partition 0). The paper's experiment knows the true counts, so by default
    ``count_source="true"`` reads ``pool_true_counts`` (an oracle); ``"predicted"`` uses
    ``pool_counts``. When fewer than ``min(m, U)`` images qualify, all of them are taken and
    the rest are the highest remaining counts (deterministic, probability 1; ties to the
    lower pool row).
    """

    name: ClassVar[str] = "count_threshold"
    threshold: float = 200.0
    count_source: Literal["true", "predicted"] = "true"

    def __post_init__(self) -> None:
        if not np.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite count, got {self.threshold!r}")
        if self.count_source not in ("true", "predicted"):
            raise ValueError(
                f"count_source must be 'true' or 'predicted', got {self.count_source!r}"
            )

    def _check_inputs(self, inputs):
        if self.count_source == "true" and inputs.pool_true_counts is None:
            raise ValueError(
                f"strategy {self.name!r} with count_source='true' needs pool_true_counts "
                "(oracle experiment); pass count_source='predicted' to use pool_counts"
            )

    def _select(self, inputs, m, n_picks, rng):
        counts = inputs.pool_true_counts if self.count_source == "true" else inputs.pool_counts
        above = counts > self.threshold
        eligible = np.flatnonzero(above)
        n_random = min(n_picks, eligible.size)
        chosen = rng.choice(eligible, size=n_random, replace=False) if n_random else []
        selected_probability = list(1.0 / (eligible.size - np.arange(n_random)))
        below = np.flatnonzero(~above)
        fill = below[np.lexsort((below, -counts[below]))][: n_picks - n_random]
        selected = np.concatenate([np.asarray(chosen, dtype=np.int64), fill])
        pool_probability = np.zeros(inputs.n_pool)
        pool_probability[eligible] = 1.0 / eligible.size if eligible.size else 0.0
        pool_probability[fill] = 1.0
        result = self._unpartitioned_result(
            inputs,
            selected=selected,
            selected_probability=np.array(selected_probability + [1.0] * fill.size),
            pool_score=counts.copy(),
            pool_probability=pool_probability,
        )
        partition = above.astype(np.int64)
        labeled_partition = (inputs.labeled_counts > self.threshold).astype(np.int64)
        return replace(
            result,
            selected_partition=partition[selected],
            pool_partition=partition,
            labeled_partition=labeled_partition,
            partition_breaks=np.array([float(self.threshold)]),
            n_partitions=2,
            partition_method=f"threshold-{self.count_source}",
        )
