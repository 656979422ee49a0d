"""What to annotate next: grid signatures, GDSIM and count partitions (strategies follow)."""

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
from selection.signatures import (
    cell_overlap_weights,
    grid_signature,
    grid_signatures,
    signature_length,
)

__all__ = [
    "GdsimScores",
    "Partitioning",
    "assign_partitions",
    "cell_overlap_weights",
    "gdsim",
    "gdsim_naive",
    "grid_signature",
    "grid_signatures",
    "jenks_breaks",
    "jenks_breaks_exact",
    "jenks_breaks_segmented",
    "min_l1_distance",
    "partition_even",
    "partition_jenks",
    "signature_length",
]
