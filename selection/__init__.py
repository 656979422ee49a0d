"""What to annotate next: grid signatures and GDSIM (partitions and strategies follow)."""

from selection.gdsim import GdsimScores, gdsim, gdsim_naive, min_l1_distance
from selection.signatures import (
    cell_overlap_weights,
    grid_signature,
    grid_signatures,
    signature_length,
)

__all__ = [
    "GdsimScores",
    "cell_overlap_weights",
    "gdsim",
    "gdsim_naive",
    "grid_signature",
    "grid_signatures",
    "min_l1_distance",
    "signature_length",
]
