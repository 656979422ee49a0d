"""YAML -> scale overrides -> ``--set`` overrides -> frozen dataclasses, with every unknown key,
wrong type or bad value reported by its dotted path before any work; and the aliases that keep
configs written before the sections were nested loading."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config.schema import (
    INITS,
    METHODS,
    OPTIMIZERS,
    PRETEXT_TASKS,
    SCALES,
    STARTS,
    ConfigError,
    ExperimentConfig,
    StageConfig,
    TrainConfig,
)


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
        where = f"{path}.{name}" if path else name
        default = _default_of(fields[name])
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            # a partial section keeps the field's own defaults (cssccnn.stage2 is not StageConfig())
            kwargs[name] = _merge(default, build(type(default), value, where), value)
        else:
            kwargs[name] = _check_value(value, hints[name], where)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from e


def _default_of(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _merge(default, built, given: dict):
    """``default`` with the keys ``given`` explicitly taken from ``built``."""
    return dataclasses.replace(default, **{k: getattr(built, k) for k in given})


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


#: Keys of older configs -> their place today (issue 11 nested them). Accepted everywhere a key
#: is (YAML, ``scales``, ``--set``, ``grid``); shipped configs use the new names.
LEGACY_KEYS = {
    **{f"train.{f.name}": f"alac.train.{f.name}" for f in dataclasses.fields(TrainConfig)},
    **{f"cssccnn.stage{n}_{f.name}": f"cssccnn.stage{n}.{f.name}" for n in (1, 2)
       for f in dataclasses.fields(StageConfig)},
}


def current_key(dotted: str) -> str:
    """``train.lr`` -> ``alac.train.lr`` etc. (see :data:`LEGACY_KEYS`); other keys unchanged."""
    return LEGACY_KEYS.get(dotted, dotted)


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted (key, value) pairs of the nested mappings that legacy keys live in."""
    pairs = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted in ("train", "cssccnn"):
            pairs += _flatten(value, dotted + ".")
        else:
            pairs.append((dotted, value))
    return pairs


def migrate_legacy_keys(data: dict) -> dict:
    """Move legacy sections and keys of a config mapping to their current place, in place.
    Fails on a key given both ways (which one would win is not obvious)."""
    legacy = [(k, v) for k, v in _flatten({k: data[k] for k in ("train", "cssccnn") if isinstance(data.get(k), dict)})
              if k in LEGACY_KEYS]
    for old, value in legacy:
        head, _, leaf = old.rpartition(".")
        del _section(data, head)[leaf]
        new = LEGACY_KEYS[old]
        parent, _, name = new.rpartition(".")
        if name in _section(data, parent, create=True):
            raise ConfigError(f"{old} and {new} are the same setting; give it once (as {new})")
        set_dotted(data, new, value)
    if isinstance(data.get("train"), dict) and not data["train"]:
        del data["train"]
    if isinstance(data.get("grid"), dict):
        data["grid"] = {current_key(k): v for k, v in data["grid"].items()}
    return data


def _section(data: dict, dotted: str, create: bool = False) -> dict:
    node = data
    for key in dotted.split("."):
        if key not in node and create:
            node[key] = {}
        node = node[key]
    return node


def parse_set(assignments: list[str]) -> list[tuple[str, Any]]:
    """``["train.epochs=3", "alac.strategy=random"]`` -> typed pairs (values parsed as YAML)."""
    pairs = []
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        pairs.append((current_key(key.strip()), yaml.safe_load(raw) if raw.strip() else None))
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
        migrate_legacy_keys(data)
        for key, value in (scales.get(scale) or {}).items():
            set_dotted(data, current_key(key), value)
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
    _validate_dataset(config.dataset)
    _validate_ray(config.ray)
    if config.ray.amp and config.method == "cssccnn":
        raise ConfigError("ray.amp applies to AL-AC training only; CSS-CCNN's Sinkhorn loss runs in float32")
    _validate_model(config)
    for key, values in config.grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key}: must be a non-empty list of values")


def _validate_dataset(dataset) -> None:
    if dataset.max_side is not None and dataset.max_side < 1:
        raise ConfigError(f"dataset.max_side: must be >= 1 pixel, got {dataset.max_side}")
    if dataset.scale is not None:
        if not 0 < dataset.scale <= 1:
            raise ConfigError(f"dataset.scale: must lie in (0, 1], got {dataset.scale}")
        if dataset.max_side is not None:
            raise ConfigError(f"dataset.scale and dataset.max_side both given ({dataset.scale}, "
                              f"{dataset.max_side}); give one")


def _validate_ray(ray) -> None:
    """Range checks of the ``ray`` section (every method shares it)."""
    for name in ("train_workers", "score_actors", "max_failures"):
        if getattr(ray, name) < 0:
            raise ConfigError(f"ray.{name} must be >= 0, got {getattr(ray, name)}")
    for name in ("torch_threads", "score_batch_size", "max_concurrent_trials"):
        if getattr(ray, name) < 1:
            raise ConfigError(f"ray.{name} must be >= 1, got {getattr(ray, name)}")
    for name in ("cpus_per_worker", "cpus_per_actor", "trial_cpus"):
        if not getattr(ray, name) > 0:
            raise ConfigError(f"ray.{name} must be > 0, got {getattr(ray, name)}")
    if ray.use_gpu and not ray.gpus_per_worker > 0:
        raise ConfigError(f"ray.gpus_per_worker must be > 0 with ray.use_gpu, got {ray.gpus_per_worker}")
    if ray.amp and not ray.use_gpu:
        raise ConfigError("ray.amp (mixed precision) needs ray.use_gpu: true; CPU training stays float32")
    if ray.use_gpu and ray.train_workers == 0:
        _check_local_gpu(ray)


def _check_local_gpu(ray) -> None:
    """Training in this process on a GPU: CUDA must exist here (torch imported only then). Under
    ``ray job submit`` the driver need not see the cluster's GPUs, so the check waits for the run."""
    from orchestrator.core.execution import gpu_config_error, under_job_submission

    problem = None if under_job_submission() else gpu_config_error(ray)
    if problem is not None:
        raise ConfigError(problem)


def _validate_model(config: ExperimentConfig) -> None:
    """``model.start`` against the weight sources it needs, ``model.init``, the pretext settings
    and AL-AC's optimiser (files are checked by each method's validator)."""
    model = config.model
    if model.start is not None and model.start not in STARTS:
        raise ConfigError(f"model.start: unknown start {model.start!r}; choose from {list(STARTS)}")
    if model.init is not None and model.init not in INITS:
        raise ConfigError(f"model.init: unknown init {model.init!r}; choose from {list(INITS)}")
    start = model.resolved_start
    needs = {"imagenet": "pretrained", "weights": "weights"}
    if start in needs and not getattr(model, needs[start]):
        raise ConfigError(f"model.start {start} needs model.{needs[start]} (a file or URL)")
    uses = {"imagenet": ("pretrained",), "weights": ("weights", "pretrained")}.get(start, ())  # ImageNet, then weights
    for other in ("pretrained", "weights"):
        if getattr(model, other) and other not in uses:
            raise ConfigError(f"model.start {start} does not use model.{other} ({getattr(model, other)}); "
                              f"drop one of them")
    ssl = model.self_supervised
    if ssl.task not in PRETEXT_TASKS:
        raise ConfigError(f"model.self_supervised.task: unknown task {ssl.task!r}; choose from {list(PRETEXT_TASKS)}")
    for name in ("steps", "crops"):
        if getattr(ssl, name) < 1:
            raise ConfigError(f"model.self_supervised.{name} must be >= 1, got {getattr(ssl, name)}")
    if ssl.crop < 8 or ssl.crop % 8:
        raise ConfigError(f"model.self_supervised.crop must be a positive multiple of 8, got {ssl.crop}")
    if not ssl.lr > 0:
        raise ConfigError(f"model.self_supervised.lr must be > 0, got {ssl.lr}")
    if not 0 < config.alac.train.patch_side <= 1:
        raise ConfigError(f"alac.train.patch_side must lie in (0, 1], got {config.alac.train.patch_side}")
    if config.alac.train.optimizer not in OPTIMIZERS:
        raise ConfigError(f"alac.train.optimizer: unknown optimizer {config.alac.train.optimizer!r}; "
                          f"choose from {list(OPTIMIZERS)}")
