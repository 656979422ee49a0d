"""Checks of a CSS-CCNN config that need more than one field, and the prior it implies; every
problem is a :class:`ConfigError` naming the setting, raised before any work."""

from __future__ import annotations

import math
from pathlib import Path

from orchestrator.config import ConfigError, CSSConfig, ExperimentConfig
from orchestrator.config.schema import OPTIMIZERS

BASELINES = ("none", "random", "mean", "pprior", "self_supervised_labels", "fully_supervised")


def _positive(css: CSSConfig, *names: str) -> None:
    for name in names:
        value = getattr(css, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"cssccnn.{name} must be > 0, got {value!r}")


def _at_least(css: CSSConfig, minimum: int, *names: str) -> None:
    for name in names:
        if getattr(css, name) < minimum:
            raise ConfigError(f"cssccnn.{name} must be >= {minimum}, got {getattr(css, name)}")


def _check_stages(css: CSSConfig) -> None:
    """``cssccnn.stage1`` may have 0 epochs ("without stage 1"); everything else is positive."""
    for name, stage, min_epochs in (("stage1", css.stage1, 0), ("stage2", css.stage2, 1)):
        if stage.epochs < min_epochs:
            raise ConfigError(f"cssccnn.{name}.epochs must be >= {min_epochs}, got {stage.epochs}")
        if stage.batch < 1:
            raise ConfigError(f"cssccnn.{name}.batch must be >= 1, got {stage.batch}")
        if not (math.isfinite(stage.lr) and stage.lr > 0):
            raise ConfigError(f"cssccnn.{name}.lr must be > 0, got {stage.lr!r}")
        if stage.momentum < 0 or stage.weight_decay < 0:
            raise ConfigError(f"cssccnn.{name}.momentum and .weight_decay must be >= 0")
        if stage.steps_per_epoch is not None and stage.steps_per_epoch < 1:
            raise ConfigError(f"cssccnn.{name}.steps_per_epoch must be >= 1 or null, got {stage.steps_per_epoch}")
        if stage.optimizer not in OPTIMIZERS:
            raise ConfigError(f"cssccnn.{name}.optimizer must be one of {list(OPTIMIZERS)}, got {stage.optimizer!r}")


def _check_workers(css: CSSConfig, ray, train_images: int) -> None:
    """Every Ray Train worker needs at least one batch per epoch."""
    workers = max(1, ray.train_workers)
    for stage, schedule in (("stage1", css.stage1), ("stage2", css.stage2)):
        steps = schedule.steps_per_epoch or css.steps_per_epoch or max(1, train_images // schedule.batch)
        if steps < workers:
            raise ConfigError(f"{stage}: {steps} batch(es) per epoch cannot feed {workers} Ray Train workers; "
                              "lower ray.train_workers or the batch size, or set cssccnn.steps_per_epoch")


# Library backends that training rejects, and why (README "Which Sinkhorn").
UNTRAINABLE_SINKHORN_BACKENDS = {
    "geomloss": "at the reference settings (epsilon 0.1, <= 1000 iterations, tolerance 0.1) its value and gradient "
                "are not the reference objective's (measured at 288 x 1568: value 20-390 % off, gradient cosine "
                "0.56-0.98, for every scaling and debias setting tried)",
}


def validate_css(config: ExperimentConfig, pool_size: int) -> None:
    """Everything checkable before training; ``pool_size`` = images in the train split."""
    from ot.baselines import PRIOR_DRAW_MODES
    from ot.edges import GRAYSCALE_CODES
    from ot.powerlaw import CDF_MODES
    from ot.sinkhorn import SinkhornConfig

    css, ray = config.cssccnn, config.ray
    if css.baseline not in BASELINES:
        raise ConfigError(f"cssccnn.baseline: unknown baseline {css.baseline!r}; choose from {list(BASELINES)}")
    if css.plus_plus and css.baseline != "none":
        raise ConfigError(f"cssccnn.plus_plus applies to CSS-CCNN itself (baseline none), not to baseline "
                          f"{css.baseline!r}")
    _check_stages(css)
    _at_least(css, 1, "cell_size", "prior_samples",
              "moving_average", "plus_plus_moving_average", "labeled_ratio", "validation_crops_per_image",
              "checkpoint_every", "prior_cells_per_crop", "prior_crops_per_image", "sinkhorn_max_iter")
    _at_least(css, 0, "patience", "labeled_images")
    _positive(css, "supervised_lr", "loss_scale", "sinkhorn_epsilon", "alpha", "c_fmax")
    if css.crop % 8 or css.crop < 8 * css.cell_size:
        raise ConfigError(f"cssccnn.crop must be a multiple of 8 holding at least one cell "
                          f"({8 * css.cell_size} px for cell_size {css.cell_size}), got {css.crop}")
    if css.steps_per_epoch is not None and css.steps_per_epoch < 1:
        raise ConfigError(f"cssccnn.steps_per_epoch must be >= 1 or null, got {css.steps_per_epoch}")
    if css.plus_plus_patience is not None and css.plus_plus_patience < 0:
        raise ConfigError(f"cssccnn.plus_plus_patience must be >= 0 or null, got {css.plus_plus_patience}")
    if not 0 < css.holdout_fraction < 1:
        raise ConfigError(f"cssccnn.holdout_fraction must lie in (0, 1), got {css.holdout_fraction}")
    if not 0 < css.sparse_percentile < 100:
        raise ConfigError(f"cssccnn.sparse_percentile must lie in (0, 100), got {css.sparse_percentile}")
    if css.dense_weight < 0 or css.plus_plus_divergence < 0:
        raise ConfigError("cssccnn.dense_weight and cssccnn.plus_plus_divergence must be >= 0")
    if css.edge_grayscale not in GRAYSCALE_CODES:
        raise ConfigError(f"cssccnn.edge_grayscale must be one of {list(GRAYSCALE_CODES)}, got {css.edge_grayscale!r}")
    if css.prior_cdf not in CDF_MODES:
        raise ConfigError(f"cssccnn.prior_cdf must be one of {list(CDF_MODES)}, got {css.prior_cdf!r}")
    if css.prior_draw_mode not in PRIOR_DRAW_MODES:
        raise ConfigError(f"cssccnn.prior_draw_mode must be one of {list(PRIOR_DRAW_MODES)}, "
                          f"got {css.prior_draw_mode!r}")
    if css.sinkhorn_backend in UNTRAINABLE_SINKHORN_BACKENDS:
        raise ConfigError(f"cssccnn.sinkhorn_backend: {css.sinkhorn_backend!r} is not offered for training: "
                          f"{UNTRAINABLE_SINKHORN_BACKENDS[css.sinkhorn_backend]}; use 'reference' or 'exact'")
    try:
        SinkhornConfig(backend=css.sinkhorn_backend, epsilon=css.sinkhorn_epsilon,
                       max_iterations=css.sinkhorn_max_iter, tolerance=css.sinkhorn_tolerance)
    except ValueError as e:
        raise ConfigError(f"cssccnn.sinkhorn_*: {e}") from e
    if pool_size < 2:
        raise ConfigError(f"the {config.dataset.name} {config.dataset.train_split} split has {pool_size} "
                          "image(s); CSS-CCNN needs at least 2 (some are held out for validation)")
    holdout = min(pool_size - 1, max(1, int(round(css.holdout_fraction * pool_size))))
    if css.labeled_images > 0:
        if css.baseline != "none":
            raise ConfigError("cssccnn.labeled_images (limited data) applies to baseline none only")
        if css.labeled_images > pool_size - holdout:
            raise ConfigError(f"cssccnn.labeled_images ({css.labeled_images}) exceeds the "
                              f"{pool_size - holdout} train images outside the held-out part")
    _check_workers(css, ray, pool_size - holdout)
    if config.model.pretrained or config.model.resolved_start not in ("random", "weights"):
        raise ConfigError("model.pretrained / model.start imagenet|self_supervised are for CSRNet; CSS-CCNN starts "
                          "from its seed (its stage 1 is the self-supervised start) or from model.weights")
    if config.model.init is not None:
        raise ConfigError("model.init chooses CSRNet's initialisation; CSS-CCNN has its own (leave it unset)")
    if config.model.weights and not Path(config.model.weights).is_file():
        raise ConfigError(f"model.weights: file not found: {config.model.weights}")
    build_css_prior(css, pool_size + 1)


def build_css_prior(css: CSSConfig, dataset_images: int):
    """The power-law prior of ``css`` (S = ``prior_num_images`` or ``dataset_images``)."""
    from ot.prior import PowerLawPriorConfig, build_prior

    try:
        return build_prior(PowerLawPriorConfig(
            c_fmax=css.c_fmax, num_images=css.prior_num_images or dataset_images, alpha=css.alpha,
            cells_per_crop=css.prior_cells_per_crop, crops_per_image=css.prior_crops_per_image,
            cdf_mode=css.prior_cdf))
    except (ValueError, RuntimeError) as e:
        raise ConfigError(f"cssccnn prior (c_fmax {css.c_fmax}, alpha {css.alpha}): {e}") from e
