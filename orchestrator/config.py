"""Typed experiment configs: YAML -> scale overrides -> ``--set`` overrides -> frozen dataclasses.

A config file names the method, the dataset, the model, training and method settings, Ray
resources, the sweep grid, and per-scale overrides::

    experiment: alac_demo
    method: alac
    dataset: {name: synthetic, options: {n_train: 60}}
    alac: {initial: 4, per_cycle: 4, budget: 12, strategy: pssw}
    scales:
      smoke: {train.epochs: 1, dataset.limit_train: 12}

Scales (``smoke``, ``demo``, ``paper``) only override sizes, epochs, widths and trial counts; the
algorithm is the same code at every scale. ``paper`` is what the file says with no override.
Every unknown key, wrong type or bad value is reported with its dotted path before any work.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

SCALES = ("smoke", "demo", "paper")
METHODS = ("alac", "cssccnn")


class ConfigError(ValueError):
    """A config problem; the message names the file and the dotted key."""


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Which data. ``root`` is the dataset's own folder; a relative root is resolved against
    ``$COUNTING_DATA_ROOT`` when that is set. ``max_side`` caps the longer image side (images and
    points are rescaled together, counts unchanged); ``limit_*`` keep the first N items."""

    name: str = "synthetic"
    root: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    options: dict = dataclasses.field(default_factory=dict)
    max_side: int | None = None
    limit_train: int | None = None
    limit_test: int | None = None


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Network width (1.0 = the paper's) and optional initial weights: ``pretrained`` = ImageNet
    VGG16 (torchvision ``features.N.*`` naming, file or URL) for the CSRNet front end, as in the
    paper; ``weights`` = a whole network (CSRNet-pytorch checkpoint or one of ours). Both None =
    seeded random initialisation."""

    width: float = 1.0
    pretrained: str | None = None
    weights: str | None = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Regressor training per AL cycle (METHOD.md: SGD lr 1e-7, momentum 0.95, weight decay
    5e-4, 100 epochs, 2 patches per minibatch, patches augmented to 1200)."""

    lr: float = 1e-7
    momentum: float = 0.95
    weight_decay: float = 5e-4
    epochs: int = 100
    reference_total: int = 1200
    max_steps_per_epoch: int | None = None


@dataclasses.dataclass(frozen=True)
class ALConfig:
    """Active-learning cycle settings: ``initial`` = m0, ``per_cycle`` = m, ``budget`` = M."""

    initial: int = 10
    per_cycle: int = 10
    budget: int = 30
    strategy: str = "pssw"
    levels: int = 3  # grid-signature levels 0..LA
    alignment: bool = True  # distribution alignment (GRL + latent MixUp) in the last cycle
    alignment_every_cycle: bool = False  # AL-AC-v
    mixup: bool = True  # latent MixUp in the alignment loss; false = the "GRL only" ablation
    beta: float = 3.0
    grl_multiplier: float = -1.0
    mixup_alpha: float = 0.5
    count_threshold: float = 200.0  # for the count_threshold strategy


@dataclasses.dataclass(frozen=True)
class CSSConfig:
    """CSS-CCNN settings (METHOD.md, CSS-CCNN section; defaults = the paper on ShanghaiTech A).

    ``baseline`` picks what the trial produces: ``none`` (CSS-CCNN itself), ``random`` (stage 1
    + untrained head), ``mean``, ``pprior``, ``self_supervised_labels`` (stage-1 features +
    supervised head), ``fully_supervised``. ``labeled_images > 0`` is the limited-data variant
    (labeled and unlabeled batches alternating ``labeled_ratio``:1)."""

    plus_plus: bool = False
    baseline: str = "none"
    crop: int = 224
    # stage 1: rotation self-supervision
    stage1_epochs: int = 100
    stage1_lr: float = 1e-3
    stage1_momentum: float = 0.9
    stage1_weight_decay: float = 1e-4
    stage1_batch: int = 4
    holdout_fraction: float = 0.1
    # stage 2: Sinkhorn distribution matching, frozen features
    stage2_epochs: int = 1000
    stage2_lr: float = 1e-5
    stage2_momentum: float = 0.9
    stage2_weight_decay: float = 1e-4
    stage2_batch: int = 32
    steps_per_epoch: int | None = None
    loss_scale: float = 0.01
    prior_samples: int = 1568
    sinkhorn_backend: str = "reference"
    sinkhorn_epsilon: float = 0.1
    sinkhorn_max_iter: int = 1000
    sinkhorn_tolerance: float = 0.1
    patience: int = 300
    moving_average: int = 5
    # prior
    alpha: float = 2.0
    c_fmax: float = 3000.0
    prior_cdf: str = "unnormalised"
    # CSS-CCNN++
    sparse_percentile: float = 30.0
    dense_weight: float = 0.1
    plus_plus_moving_average: int = 10
    # limited data (paper section 4.8)
    labeled_images: int = 0
    labeled_ratio: int = 5
    # added for the trial runner (defaults = the reference code)
    cell_size: int = 8  # cell side in output pixels (8 = 64 input pixels; 3 x 3 cells per 224 crop)
    prior_cells_per_crop: int = 16  # C_max = c_fmax / (cells per crop x crops per image), 4 x 4 ...
    prior_crops_per_image: int = 4  # ... and 4 crops in the reference; also the Mean/Pprior image counts
    prior_num_images: int | None = None  # S in CDF(C_max) > 1 - 1/S; None = train + test images
    prior_draw_mode: str = "sum_of_cells"  # CCNN Pprior: sum of cells_per_image draws, or scaled_cell
    plus_plus_divergence: float = 1.0  # ++: stop when the smoothed sparse loss exceeds its minimum by this
    validation_crops_per_image: int = 5  # ++ validation: fixed crops per held-out image
    supervised_lr: float = 1e-5  # the labeled baselines' head (or whole network) learning rate
    checkpoint_every: int = 1  # epochs between a stage's progress checkpoints


@dataclasses.dataclass(frozen=True)
class RayConfig:
    """Where the work runs. ``train_workers = 0`` trains in-process; ``>= 1`` runs the same loop
    under Ray Train (gloo on CPU, NCCL on GPU). ``score_actors = 0`` scores the pool in-process;
    ``>= 1`` runs the same scorer as a Ray Data actor pool."""

    train_workers: int = 0
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0
    score_actors: int = 0
    cpus_per_actor: float = 1.0
    score_batch_size: int = 4
    torch_threads: int = 1
    trial_cpus: float = 1.0  # a Tune trial's own share; 0.01 when its Train workers hold the CPUs
    max_concurrent_trials: int = 2
    max_failures: int = 1  # Tune retries of a failed trial (resuming from its checkpoint)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    experiment: str
    method: str
    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    alac: ALConfig = dataclasses.field(default_factory=ALConfig)
    cssccnn: CSSConfig = dataclasses.field(default_factory=CSSConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)
    seed: int = 0
    trials: int = 10
    grid: dict = dataclasses.field(default_factory=dict)  # dotted key -> list of values (sweeps)
    paper: dict = dataclasses.field(default_factory=dict)  # the paper's reported numbers, for reports
    scale: str = "paper"
    source: str | None = None  # the file it came from

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# building from dicts


def _check_value(value: Any, annotation: Any, path: str) -> Any:
    """Coerce ``value`` to the field type ``annotation`` or raise naming ``path``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{path}: bad value {value!r}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-7" as a string
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    if annotation is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{path}: expected a mapping, got {value!r}")
    if dataclasses.is_dataclass(annotation):
        return build(annotation, value, path)
    return value


def build(cls, data: Any, path: str = ""):
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys by dotted path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"unknown key(s) {[where + k for k in unknown]}; known under "
                          f"{path or 'the top level'}: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _check_value(value, hints[name], f"{path}.{name}" if path else name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from e


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """``set_dotted(d, "train.epochs", 3)`` sets ``d["train"]["epochs"] = 3`` (creating maps).

    Keys under a free-form mapping (``dataset.options.n_train``) work the same way."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def parse_set(assignments: list[str]) -> list[tuple[str, Any]]:
    """``["train.epochs=3", "alac.strategy=random"]`` -> typed pairs (values parsed as YAML)."""
    pairs = []
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        pairs.append((key.strip(), yaml.safe_load(raw) if raw.strip() else None))
    return pairs


def read_yaml_mapping(path: Path, what: str = "config file") -> dict:
    """The top-level mapping of a YAML file, or a ConfigError naming the file."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{what} {path} unreadable: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: expected a mapping at the top level")
    return data


def load_config(path: str | Path, scale: str = "paper", overrides: list[str] | None = None,
                seed: int | None = None) -> ExperimentConfig:
    """Read ``path``, apply the ``scale``'s overrides, then ``overrides`` (``key=value``), and
    validate. Errors name the file and the dotted key."""
    path = Path(path)
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose from {list(SCALES)}")
    data = read_yaml_mapping(path)
    scales = data.pop("scales", None) or {}
    if not isinstance(scales, dict) or set(scales) - set(SCALES):
        raise ConfigError(f"{path}: 'scales' must map some of {list(SCALES)} to overrides, got {list(scales)}")
    try:
        for key, value in (scales.get(scale) or {}).items():
            set_dotted(data, key, value)
        for key, value in parse_set(overrides or []):
            set_dotted(data, key, value)
        if seed is not None:
            data["seed"] = seed
        data["scale"] = scale
        data["source"] = str(path)
        config = build(ExperimentConfig, data)
        validate(config)
    except ConfigError as e:
        raise ConfigError(f"{path} (scale {scale}): {e}") from e
    return config


def validate(config: ExperimentConfig) -> None:
    """Checks that need more than one field; raises :class:`ConfigError`."""
    if config.method not in METHODS:
        raise ConfigError(f"method: unknown method {config.method!r}; choose from {list(METHODS)}")
    if config.trials < 1:
        raise ConfigError(f"trials: must be >= 1, got {config.trials}")
    if config.model.width <= 0:
        raise ConfigError(f"model.width: must be > 0, got {config.model.width}")
    for key, values in config.grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key}: must be a non-empty list of values")
