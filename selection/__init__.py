"""What to annotate next: grid signatures, GDSIM, count partitions and the AL-AC strategies.

A pure library (numpy arrays in and out; no I/O, no Ray). Typical use, once per AL cycle::

    import numpy as np
    import selection

    pool_sig = selection.grid_signatures(predicted_maps)       # (U, 85) float64
    labeled_sig = selection.grid_signatures(true_maps)          # (L, 85) float64
    inputs = selection.SelectionInputs(
        pool_counts=predicted_maps.sum(axis=(1, 2)), labeled_counts=true_counts,
        pool_signatures=pool_sig, labeled_signatures=labeled_sig,
    )
    result = selection.select("pssw", inputs, m=10, rng=np.random.default_rng(seed))
    result.selected          # (10,) int64 rows of the pool arrays, in pick order

Strategy names: ``sorted(selection.STRATEGIES)``.
"""

from selection.containers import SelectionInputs, SelectionResult
from selection.draws import PartitionDraws, draw_per_partition, score_probabilities
from selection.gdsim import GdsimScores, gdsim, gdsim_naive, min_l1_distance
from selection.partitions import (
    Partitioning,
    assign_partitions,
    jenks_breaks,
    jenks_breaks_exact,
    jenks_breaks_segmented,
    partition_even,
    partition_jenks,
)
from selection.registry import STRATEGIES, UnknownStrategyError, make_strategy, pssw, select
from selection.signatures import (
    cell_overlap_weights,
    grid_signature,
    grid_signatures,
    signature_length,
)
from selection.strategies import (
    CountThresholdSelection,
    DomainClassifierSelection,
    EvenPartitionSelection,
    GlobalDiffSelection,
    PsswSelection,
    RandomSelection,
    SelectionStrategy,
)

__all__ = [
    "STRATEGIES",
    "CountThresholdSelection",
    "DomainClassifierSelection",
    "EvenPartitionSelection",
    "GdsimScores",
    "GlobalDiffSelection",
    "PartitionDraws",
    "Partitioning",
    "PsswSelection",
    "RandomSelection",
    "SelectionInputs",
    "SelectionResult",
    "SelectionStrategy",
    "UnknownStrategyError",
    "assign_partitions",
    "cell_overlap_weights",
    "draw_per_partition",
    "gdsim",
    "gdsim_naive",
    "grid_signature",
    "grid_signatures",
    "jenks_breaks",
    "jenks_breaks_exact",
    "jenks_breaks_segmented",
    "make_strategy",
    "min_l1_distance",
    "partition_even",
    "partition_jenks",
    "pssw",
    "score_probabilities",
    "select",
    "signature_length",
]
