"""Every check of an AL-AC config that is possible before any training, in one place: the trial
runner calls it, and so does the sweep before Ray starts (without building a trial)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.alac.strategy import check_strategy
from orchestrator.config import ConfigError, ExperimentConfig, TrainConfig

LR_SCHEDULES = ("constant", "cosine")


def check_training(train: TrainConfig) -> None:
    """Range checks of ``alac.train`` (the optimiser's name is checked at load)."""
    lowest = {"epochs": 1, "reference_total": 1, "pairs_per_step": 1}
    for name, low in lowest.items():
        if getattr(train, name) < low:
            raise ConfigError(f"alac.train.{name} must be >= {low}, got {getattr(train, name)}")
    if not train.lr > 0:
        raise ConfigError(f"alac.train.lr must be > 0, got {train.lr}")
    if not 0 <= train.momentum < 1:
        raise ConfigError(f"alac.train.momentum must lie in [0, 1), got {train.momentum}")
    if not train.weight_decay >= 0:
        raise ConfigError(f"alac.train.weight_decay must be >= 0, got {train.weight_decay}")
    if train.max_steps_per_epoch is not None and train.max_steps_per_epoch < 1:
        raise ConfigError(f"alac.train.max_steps_per_epoch must be >= 1 or null, got {train.max_steps_per_epoch}")
    if train.grad_clip is not None and not train.grad_clip > 0:
        raise ConfigError(f"alac.train.grad_clip must be > 0 or null, got {train.grad_clip}")
    if train.ema_decay is not None and not 0 < train.ema_decay < 1:
        raise ConfigError(f"alac.train.ema_decay must lie in (0, 1) or be null, got {train.ema_decay}")
    if train.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"alac.train.lr_schedule: unknown schedule {train.lr_schedule!r}; expected one of "
                          f"{', '.join(LR_SCHEDULES)}")


def validate_alac(config: ExperimentConfig, pool_size: int) -> None:
    """Raises :class:`ConfigError` naming the setting; ``pool_size`` = images in the train split."""
    al = config.alac
    if al.per_cycle < 1:
        raise ConfigError(f"alac.per_cycle (m) must be >= 1, got {al.per_cycle}")
    if al.initial < 1:
        raise ConfigError(f"alac.initial (m0) must be >= 1, got {al.initial}")
    if al.budget < al.initial:
        raise ConfigError(f"alac.budget (M = {al.budget}) is below alac.initial (m0 = {al.initial})")
    if al.budget > pool_size:
        raise ConfigError(f"alac.budget (M = {al.budget}) exceeds the pool: the {config.dataset.name} "
                          f"{config.dataset.train_split} split has {pool_size} images")
    check_strategy(al.strategy, al.domain_pick)
    check_training(al.train)
    if al.strategy == "domain_classifier" and not al.alignment_every_cycle:
        raise ConfigError("alac.strategy domain_classifier (AL-AC-v) needs alac.alignment_every_cycle: true")
    for name in ("pretrained", "weights"):
        value = getattr(config.model, name)
        if value and not str(value).startswith(("http://", "https://")) and not Path(value).is_file():
            raise ConfigError(f"model.{name}: file not found: {value}")
