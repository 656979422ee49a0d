"""What a sweep runs: experiment configs (or a suite of them) expanded into trials, grid x seeds.

A sweep file is either one experiment config (``method:`` at the top) or a *suite*::

    suite: demo
    description: AL-AC (PSSW vs random) and CSS-CCNN on generated crowds
    experiments:
      - config: alac/demo.yaml          # relative to this file
      - config: cssccnn/demo.yaml
        trials: 2                       # optional per-experiment trial count
        set: [cssccnn.plus_plus=false]  # optional overrides

Each trial is one seed of one grid point; seeds are ``config.seed + 0 .. trials-1``, the same for
every grid point (paired comparisons). Grid points whose trials would compute the same thing
(``rs_baseline`` ignores ``alac.alignment``) are run once, under the first point's settings.
Every trial's config is loaded and validated here, before Ray starts, so a typo fails in a
second, not after an hour.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from pathlib import Path

import yaml

from orchestrator.config import ConfigError, ExperimentConfig, load_config, read_yaml_mapping

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SWEEP = REPO / "configs" / "demo.yaml"


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """One trial: a config file, a scale, overrides (grid point + user ``--set``), a seed."""

    experiment: str
    trial_id: str
    config_path: str
    scale: str
    overrides: tuple[str, ...]
    seed: int
    settings: tuple[tuple[str, object], ...]  # the swept keys and this trial's values

    def load(self) -> ExperimentConfig:
        path = Path(self.config_path)
        return load_config(path if path.is_absolute() else REPO / path, self.scale, list(self.overrides),
                           seed=self.seed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrialSpec:
        return cls(data["experiment"], data["trial_id"], data["config_path"], data["scale"],
                   tuple(data["overrides"]), int(data["seed"]), tuple(tuple(kv) for kv in data["settings"]))


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    name: str
    trials: list[TrialSpec]
    experiments: dict[str, ExperimentConfig]  # experiment name -> its base config (grid point 0)
    max_concurrent_trials: int


def portable_path(path: Path) -> str:
    """Config files inside the project are stored relative to it: on a cluster every node has
    its own copy of the working directory at a different absolute path. Files elsewhere stay
    absolute (they must then be on storage every node sees)."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(REPO))
    except ValueError:
        return str(resolved)


def _yaml_value(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _trial_id(experiment: str, settings: tuple, seed: int) -> str:
    digest = hashlib.sha1(repr(settings).encode()).hexdigest()[:6] if settings else "base"
    return f"{experiment}-{digest}-s{seed}"


def expand_experiment(path: Path, scale: str, overrides: list[str], trials: int | None) -> tuple[ExperimentConfig, list[TrialSpec]]:
    """One experiment config -> its base config and its trials (grid x seeds)."""
    base = load_config(path, scale, overrides)
    if base.grid:
        keys = list(base.grid)
        points = [tuple(zip(keys, combo)) for combo in itertools.product(*(base.grid[k] for k in keys))]
    else:
        points = [()]
    n_trials = trials if trials is not None else base.trials
    stored_path = portable_path(path)
    if n_trials < 1:
        raise ConfigError(f"{path}: the number of trials must be >= 1, got {n_trials}")
    specs, seen = [], set()
    for settings in points:
        point_overrides = tuple(overrides) + tuple(f"{k}={_yaml_value(v)}" for k, v in settings)
        same = _what_runs(load_config(path, scale, list(point_overrides)))
        if same in seen:  # e.g. rs_baseline x alignment true = rs_baseline x false: run it once
            continue
        seen.add(same)
        for i in range(n_trials):
            seed = base.seed + i
            specs.append(TrialSpec(base.experiment, _trial_id(base.experiment, settings, seed), stored_path, scale,
                                   point_overrides, seed, settings))
        validate_trial(specs[-1])
    return base, specs


def _what_runs(config: ExperimentConfig) -> str:
    """What a grid point's trials compute: its config less the settings its method ignores."""
    if config.method == "alac":
        from orchestrator.alac.strategy import effective_alac

        config = dataclasses.replace(config, alac=effective_alac(config.alac))
    return repr(dataclasses.replace(config, source=None, grid={}).to_dict())


def validate_trial(spec: TrialSpec) -> None:
    """Everything the trial runner checks before work (config, dataset layout, budgets, weights
    files), without running it. The seed never changes validity, so one seed per grid point."""
    from orchestrator.trial import validate_experiment

    validate_experiment(spec.load())


def plan_sweep(path: str | Path | None = None, scale: str = "demo", overrides: list[str] | None = None,
               trials: int | None = None) -> SweepPlan:
    """Expand a sweep file (experiment or suite) into validated trials."""
    path = Path(path) if path is not None else DEFAULT_SWEEP
    overrides = list(overrides or [])
    data = read_yaml_mapping(path, "sweep file")
    if "suite" not in data:
        base, specs = expand_experiment(path, scale, overrides, trials)
        return SweepPlan(base.experiment, specs, {base.experiment: base}, base.ray.max_concurrent_trials)

    unknown = sorted(set(data) - {"suite", "description", "experiments", "max_concurrent_trials"})
    if unknown:
        raise ConfigError(f"{path}: unknown suite key(s) {unknown}")
    entries = data.get("experiments")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: 'experiments' must be a non-empty list")
    specs, experiments = [], {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or "config" not in entry or set(entry) - {"config", "trials", "set"}:
            raise ConfigError(f"{path}: experiments[{n}] must be a mapping with 'config' and optional 'trials', 'set'")
        sub = (path.parent / entry["config"]).resolve()
        base, sub_specs = expand_experiment(sub, scale, list(entry.get("set") or []) + overrides,
                                            trials if trials is not None else entry.get("trials"))
        if base.experiment in experiments:
            raise ConfigError(f"{path}: experiment name {base.experiment!r} appears twice")
        experiments[base.experiment] = base
        specs += sub_specs
    limit = int(data.get("max_concurrent_trials", max(b.ray.max_concurrent_trials for b in experiments.values())))
    return SweepPlan(str(data["suite"]), specs, experiments, limit)
