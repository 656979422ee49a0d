"""Typed experiment configs: YAML -> scale overrides -> ``--set`` overrides -> frozen dataclasses
(``schema`` holds the dataclasses, ``loading`` turns YAML into them).

A config file names the method, the dataset, the model, training and method settings, Ray
resources, the sweep grid, and per-scale overrides::

    experiment: alac_demo
    method: alac
    dataset: {name: synthetic, options: {n_train: 60}}
    alac: {initial: 4, per_cycle: 4, budget: 12, strategy: pssw}
    scales:
      smoke: {alac.train.epochs: 1, dataset.limit_train: 12}

Scales (``smoke``, ``demo``, ``paper``) only override sizes, epochs, widths and trial counts; the
algorithm is the same code at every scale. ``paper`` is what the file says with no override.
Every unknown key, wrong type or bad value is reported with its dotted path before any work.
"""

from orchestrator.config.loading import (
    LEGACY_KEYS,
    build,
    current_key,
    load_config,
    migrate_legacy_keys,
    parse_set,
    read_yaml_mapping,
    set_dotted,
    validate,
)
from orchestrator.config.schema import (
    METHODS,
    SCALES,
    ALConfig,
    ConfigError,
    CSSConfig,
    DatasetConfig,
    ExperimentConfig,
    ModelConfig,
    RayConfig,
    StageConfig,
    TrainConfig,
)

__all__ = ["LEGACY_KEYS", "METHODS", "SCALES", "ALConfig", "CSSConfig", "ConfigError", "DatasetConfig",
           "ExperimentConfig", "ModelConfig", "RayConfig", "StageConfig", "TrainConfig", "build", "current_key",
           "load_config", "migrate_legacy_keys", "parse_set", "read_yaml_mapping", "set_dotted", "validate"]
