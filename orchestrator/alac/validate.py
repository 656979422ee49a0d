"""Every check of an AL-AC config that is possible before any training, in one place: the trial
runner calls it, and so does the sweep before Ray starts (without building a trial)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.alac.strategy import check_strategy
from orchestrator.config import ConfigError, ExperimentConfig


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
    check_strategy(al.strategy)
    if al.strategy == "domain_classifier" and not al.alignment_every_cycle:
        raise ConfigError("alac.strategy domain_classifier (AL-AC-v) needs alac.alignment_every_cycle: true")
    for name in ("pretrained", "weights"):
        value = getattr(config.model, name)
        if value and not str(value).startswith(("http://", "https://")) and not Path(value).is_file():
            raise ConfigError(f"model.{name}: file not found: {value}")
