"""Optimal transport for CSS-CCNN: the power-law count prior, the Sinkhorn loss and the
CSS-CCNN++ edge split. A pure library: arrays and tensors in and out, no I/O.

Not to be confused with POT (also imported as ``ot``), which this project never depends on.
"""

from ot.baselines import mean_count_predictions, prior_draw_predictions, prior_mean_image_count
from ot.cells import cell_counts, cell_counts_numpy
from ot.edges import EdgeDensityConfig, edge_map, edge_pseudo_counts, edge_pseudo_density
from ot.powerlaw import choose_lambda, choose_shift_threshold, power_law_cdf, power_law_pdf, power_law_tail_integral
from ot.prior import (
                          PowerLawPrior,
                          PowerLawPriorConfig,
                          build_prior,
                          redistribute_below_threshold,
                          sample_truncated_power_law,
)
from ot.sinkhorn import (
                          REFERENCE_LOSS_WEIGHT,
                          SinkhornConfig,
                          SinkhornPotentials,
                          reference_sinkhorn_potentials,
                          sinkhorn_loss,
                          squared_difference_cost,
                          transport_plan,
)
from ot.sinkhorn_fast import stabilized_sinkhorn_potentials
from ot.split import SplitSinkhornLoss, css_ccnn_plus_plus_loss, dense_rank, sparse_mask

__all__ = [
    "EdgeDensityConfig", "PowerLawPrior", "PowerLawPriorConfig", "REFERENCE_LOSS_WEIGHT",
    "SinkhornConfig", "SinkhornPotentials", "SplitSinkhornLoss", "build_prior", "cell_counts",
    "cell_counts_numpy", "choose_lambda", "choose_shift_threshold", "css_ccnn_plus_plus_loss",
    "dense_rank", "edge_map", "edge_pseudo_counts", "edge_pseudo_density",
    "mean_count_predictions", "power_law_cdf",
    "power_law_pdf", "power_law_tail_integral", "prior_draw_predictions",
    "prior_mean_image_count", "redistribute_below_threshold", "reference_sinkhorn_potentials",
    "sample_truncated_power_law", "sinkhorn_loss", "sparse_mask", "squared_difference_cost",
    "stabilized_sinkhorn_potentials",
    "transport_plan",
]
