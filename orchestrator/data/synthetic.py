"""Synthetic crowds: the embedded default dataset, generated from a seed with exact head points.

Each image is a function of ``(config, seed, index)`` alone. Two independent random streams are
derived from that triple (``np.random.default_rng([seed, index, stream])``):

* the *layout* stream gives the head points and radii (:func:`crowd_layout`); it is cheap
  (no pixels), so the dataset layer can read counts and points without rendering;
* the *appearance* stream gives everything drawn around them (:func:`render_crowd`): background
  texture, clothing, hair and skin colours, distractor shapes, lighting and noise.

What the generator models (all configurable in :class:`SyntheticCrowdConfig`):

* long-tailed counts across images: log-uniform (default) or truncated Pareto between
  ``min_count`` and ``max_count``;
* clustered groups of uneven sizes (Dirichlet weights) plus a few people scattered alone;
* perspective: the head radius grows linearly with the row, from
  ``head_radius * (1 - perspective)`` at the top row to ``head_radius`` at the bottom row, and
  groups are tighter higher up;
* a light repulsion so heads overlap only partly (occlusion in dense groups, not stacking).

Points follow the project convention (:mod:`orchestrator.data.base`): ``(N, 2) float64``,
x = column, y = row, pixels; every point lies inside ``[0.5, W - 0.5] x [0.5, H - 0.5]``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from orchestrator.data.base import DatasetError, Item
from orchestrator.data.synthetic_render import render_layout

__all__ = [
    "COUNT_DISTRIBUTIONS",
    "SPLITS",
    "TEST_INDEX_OFFSET",
    "CrowdLayout",
    "SyntheticCrowdConfig",
    "crowd_layout",
    "crowd_points",
    "read_synthetic",
    "render_crowd",
]

COUNT_DISTRIBUTIONS = ("log_uniform", "pareto")
SPLITS = ("train", "test")
# Test images use generator indices TEST_INDEX_OFFSET + i: disjoint from train for any n_train
# below it, and the test set does not change when n_train changes.
TEST_INDEX_OFFSET = 1_000_000

_LAYOUT_STREAM = 0
_APPEARANCE_STREAM = 1
# Points keep this distance (pixels) from the image border so each centre pixel exists.
_BORDER_MARGIN = 0.5
_RELAX_ITERATIONS = 6


@dataclasses.dataclass(frozen=True)
class SyntheticCrowdConfig:
    """How synthetic crowd images are generated. Lengths are in pixels.

    Attributes:
        height, width: image size.
        min_count, max_count: inclusive range of the number of heads per image.
        count_distribution: ``"log_uniform"`` (log of the count uniform on the range) or
            ``"pareto"`` (truncated Pareto with shape ``pareto_shape``); both long-tailed
            (mean above median).
        pareto_shape: Pareto tail index alpha (> 0); smaller = heavier tail.
        min_groups, max_groups: inclusive range of the number of clustered groups per image.
        group_concentration: Dirichlet concentration of the group sizes (< 1: very uneven).
        scatter_fraction: expected fraction of heads placed uniformly, outside any group.
        group_spread: a group's Gaussian standard deviation is
            ``group_spread * head radius at its centre * sqrt(group size)``.
        head_radius: head radius at the bottom row.
        perspective: in ``[0, 1)``; the head radius at the top row is
            ``head_radius * (1 - perspective)`` (0 = no perspective).
        radius_jitter: standard deviation of the per-head log radius factor.
        min_head_separation: repulsion target: two head centres are pushed apart to at least
            this multiple of the sum of their radii (1 = touching, below 1 = partial overlap).
        min_distractors, max_distractors: inclusive range of non-head shapes per image.
        texture_contrast: strength of background structure and colour noise, in ``[0, 1]``.
        lighting_strength: strength of the global brightness ramp and colour cast, in ``[0, 1]``.
        noise_std: standard deviation of per-pixel sensor noise, in 0..255 grey levels.
        draw_bodies: draw a shoulder/torso ellipse below each head.
    """

    height: int = 256
    width: int = 256
    min_count: int = 5
    max_count: int = 400
    count_distribution: str = "log_uniform"
    pareto_shape: float = 1.0
    min_groups: int = 1
    max_groups: int = 5
    group_concentration: float = 0.8
    scatter_fraction: float = 0.15
    group_spread: float = 1.0
    head_radius: float = 6.0
    perspective: float = 0.6
    radius_jitter: float = 0.12
    min_head_separation: float = 0.8
    min_distractors: int = 2
    max_distractors: int = 12
    texture_contrast: float = 0.5
    lighting_strength: float = 0.3
    noise_std: float = 3.0
    draw_bodies: bool = True

    def __post_init__(self):
        _require_int(self, "height", lo=16)
        _require_int(self, "width", lo=16)
        _require_int(self, "min_count", lo=0)
        _require_int(self, "max_count", lo=0)
        _require_order(self, "min_count", "max_count")
        if self.count_distribution not in COUNT_DISTRIBUTIONS:
            raise ValueError(
                f"SyntheticCrowdConfig.count_distribution must be one of {COUNT_DISTRIBUTIONS}, "
                f"got {self.count_distribution!r}"
            )
        _require_float(self, "pareto_shape", lo=0.0, lo_open=True)
        _require_int(self, "min_groups", lo=1)
        _require_int(self, "max_groups", lo=1)
        _require_order(self, "min_groups", "max_groups")
        _require_float(self, "group_concentration", lo=0.0, lo_open=True)
        _require_float(self, "scatter_fraction", lo=0.0, hi=1.0)
        _require_float(self, "group_spread", lo=0.0, lo_open=True)
        _require_float(self, "head_radius", lo=1.0)
        _require_float(self, "perspective", lo=0.0, hi=1.0, hi_open=True)
        if self.head_radius * (1.0 - self.perspective) < 1.0:
            raise ValueError(
                "SyntheticCrowdConfig: top-row head radius head_radius * (1 - perspective) = "
                f"{self.head_radius} * (1 - {self.perspective}) = "
                f"{self.head_radius * (1.0 - self.perspective):.3g} px must be >= 1 px"
            )
        _require_float(self, "radius_jitter", lo=0.0, hi=1.0)
        _require_float(self, "min_head_separation", lo=0.0, hi=2.0)
        _require_int(self, "min_distractors", lo=0)
        _require_int(self, "max_distractors", lo=0)
        _require_order(self, "min_distractors", "max_distractors")
        _require_float(self, "texture_contrast", lo=0.0, hi=1.0)
        _require_float(self, "lighting_strength", lo=0.0, hi=1.0)
        _require_float(self, "noise_std", lo=0.0, hi=64.0)
        if not isinstance(self.draw_bodies, bool):
            raise ValueError(f"SyntheticCrowdConfig.draw_bodies must be a bool, got {self.draw_bodies!r}")

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return self.height, self.width

    def radius_at_row(self, y: np.ndarray) -> np.ndarray:
        """Nominal head radius (pixels) at row(s) ``y`` (pixels), before per-head jitter."""
        depth = 1.0 - np.asarray(y, dtype=np.float64) / self.height
        return self.head_radius * (1.0 - self.perspective * np.clip(depth, 0.0, 1.0))


def _require_int(cfg, name: str, lo: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"SyntheticCrowdConfig.{name} must be an int, got {value!r}")
    if value < lo:
        raise ValueError(f"SyntheticCrowdConfig.{name} must be >= {lo}, got {value}")


def _require_float(cfg, name: str, lo: float, hi: float = math.inf, lo_open=False, hi_open=False):
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"SyntheticCrowdConfig.{name} must be a number, got {value!r}")
    too_low = value <= lo if lo_open else value < lo
    too_high = value >= hi if hi_open else value > hi
    if not math.isfinite(value) or too_low or too_high:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open or hi == math.inf else ']'}"
        raise ValueError(f"SyntheticCrowdConfig.{name} must lie in {interval}, got {value}")


def _require_order(cfg, low_name: str, high_name: str) -> None:
    low, high = getattr(cfg, low_name), getattr(cfg, high_name)
    if low > high:
        raise ValueError(
            f"SyntheticCrowdConfig.{low_name} ({low}) must be <= {high_name} ({high})"
        )


@dataclasses.dataclass(frozen=True)
class CrowdLayout:
    """Where the heads of one synthetic image are.

    Attributes:
        points: ``(N, 2) float64`` head centres, x = column, y = row, pixels.
        head_radii: ``(N,) float64`` head radii in pixels (perspective times per-head jitter).
        height, width: image size in pixels.
    """

    points: np.ndarray
    head_radii: np.ndarray
    height: int
    width: int

    @property
    def count(self) -> int:
        return int(len(self.points))


def _check_seed_index(seed, index) -> None:
    for name, value in (("seed", seed), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def _sample_count(config: SyntheticCrowdConfig, rng: np.random.Generator) -> int:
    """One long-tailed head count in ``[min_count, max_count]``."""
    lo, hi = config.min_count, config.max_count
    if lo == hi:
        return lo
    u = rng.random()
    if config.count_distribution == "log_uniform":
        # log of the count uniform on [log(lo'), log(hi + 1)); lo' = 1 when lo = 0.
        lo_eff = max(lo, 1)
        value = math.exp(math.log(lo_eff) + u * (math.log(hi + 1) - math.log(lo_eff)))
    else:
        # Truncated Pareto on [lo', hi + 1) by inverse CDF.
        lo_eff, alpha = max(lo, 1), config.pareto_shape
        tail = (lo_eff / (hi + 1)) ** alpha
        value = lo_eff * (1.0 - u * (1.0 - tail)) ** (-1.0 / alpha)
    value = math.floor(value) - (1 if lo == 0 else 0)
    return int(min(max(value, lo), hi))


def _sample_inside(
    rng: np.random.Generator, n: int, centre: np.ndarray, cov: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """``(n, 2)`` Gaussian samples inside the box ``[lo, hi]``; redraws outliers a few times,
    then places any remaining ones uniformly in the box."""
    out = rng.multivariate_normal(centre, cov, size=n, method="cholesky")
    for _ in range(8):
        bad = np.flatnonzero(np.any((out < lo) | (out > hi), axis=1))
        if bad.size == 0:
            return out
        out[bad] = rng.multivariate_normal(centre, cov, size=bad.size, method="cholesky")
    bad = np.flatnonzero(np.any((out < lo) | (out > hi), axis=1))
    out[bad] = lo + rng.random((bad.size, 2)) * (hi - lo)
    return out


def _relax(points: np.ndarray, jitter: np.ndarray, config: SyntheticCrowdConfig, lo, hi) -> np.ndarray:
    """Push overlapping heads apart towards ``min_head_separation * (r_i + r_j)``; in place."""
    if len(points) < 2 or config.min_head_separation <= 0:
        return points
    for _ in range(_RELAX_ITERATIONS):
        radii = config.radius_at_row(points[:, 1]) * jitter
        reach = 2.0 * config.min_head_separation * float(radii.max())
        pairs = cKDTree(points).query_pairs(r=reach, output_type="ndarray")
        if len(pairs) == 0:
            break
        i, j = pairs[:, 0], pairs[:, 1]
        delta = points[j] - points[i]
        dist = np.hypot(delta[:, 0], delta[:, 1])
        deficit = config.min_head_separation * (radii[i] + radii[j]) - dist
        keep = deficit > 1e-6
        if not np.any(keep):
            break
        i, j, delta, dist, deficit = i[keep], j[keep], delta[keep], dist[keep], deficit[keep]
        direction = np.where(dist[:, None] > 1e-9, delta / np.maximum(dist, 1e-9)[:, None], [1.0, 0.0])
        push = 0.5 * deficit[:, None] * direction
        shift = np.zeros_like(points)
        np.add.at(shift, i, -push)
        np.add.at(shift, j, push)
        np.clip(points + shift, lo, hi, out=points)
    return points


def crowd_layout(config: SyntheticCrowdConfig, seed: int, index: int) -> CrowdLayout:
    """Head points and radii of image ``index`` of the crowd generated from ``seed``; no pixels.

    Deterministic from ``(config, seed, index)``. Returns a :class:`CrowdLayout` with
    ``(N, 2) float64`` points (x = column, y = row, pixels, all inside the image) and
    ``(N,) float64`` head radii in pixels.
    """
    if not isinstance(config, SyntheticCrowdConfig):
        raise ValueError(f"config must be a SyntheticCrowdConfig, got {type(config).__name__}")
    _check_seed_index(seed, index)
    rng = np.random.default_rng([int(seed), int(index), _LAYOUT_STREAM])
    height, width = config.height, config.width
    lo = np.array([_BORDER_MARGIN, _BORDER_MARGIN])
    hi = np.array([width - _BORDER_MARGIN, height - _BORDER_MARGIN])

    count = _sample_count(config, rng)
    n_scatter = int(rng.binomial(count, config.scatter_fraction))
    n_groups = int(rng.integers(config.min_groups, config.max_groups + 1))
    weights = rng.dirichlet(np.full(n_groups, config.group_concentration))
    group_sizes = rng.multinomial(count - n_scatter, weights)

    chunks = [lo + rng.random((n_scatter, 2)) * (hi - lo)]
    max_sigma = 0.35 * max(height, width)
    for size in group_sizes:
        centre = lo + rng.random(2) * (hi - lo)
        sigma = config.group_spread * float(config.radius_at_row(centre[1])) * math.sqrt(max(size, 1))
        sigma = min(sigma, max_sigma)
        aspect = rng.uniform(1.0, 2.5)  # crowds spread wider than deep
        angle = rng.uniform(-0.35, 0.35)
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        axes = np.diag([(sigma * math.sqrt(aspect)) ** 2, (sigma / math.sqrt(aspect)) ** 2])
        chunks.append(_sample_inside(rng, int(size), centre, rot @ axes @ rot.T, lo, hi))
    points = np.ascontiguousarray(np.concatenate(chunks, axis=0), dtype=np.float64)
    jitter = np.exp(rng.normal(0.0, config.radius_jitter, size=count))
    points = _relax(points, jitter, config, lo, hi)
    radii = np.maximum(config.radius_at_row(points[:, 1]) * jitter, 1.0)
    return CrowdLayout(points=points, head_radii=radii, height=height, width=width)


def crowd_points(config: SyntheticCrowdConfig, seed: int, index: int) -> np.ndarray:
    """``(N, 2) float64`` head points (x = column, y = row, pixels) of one synthetic image.

    Cheap: computes the layout only, never the pixels. Identical to the centres of the heads
    that :func:`render_crowd` draws for the same ``(config, seed, index)``.
    """
    return crowd_layout(config, seed, index).points


def render_crowd(config: SyntheticCrowdConfig, seed: int, index: int) -> np.ndarray:
    """The ``(H, W, 3) uint8`` RGB image of one synthetic crowd, deterministic from
    ``(config, seed, index)``; its heads are centred exactly on :func:`crowd_points`."""
    layout = crowd_layout(config, seed, index)
    rng = np.random.default_rng([int(seed), int(index), _APPEARANCE_STREAM])
    return render_layout(config, layout, rng)


def _split_index(split: str, position: int) -> int:
    return position if split == "train" else TEST_INDEX_OFFSET + position


def read_synthetic(
    root: str | Path | None = None,
    split: str = "train",
    *,
    n_train: int = 300,
    n_test: int = 100,
    seed: int = 0,
    config: SyntheticCrowdConfig | None = None,
    **config_overrides,
) -> list[Item]:
    """Items of one split of the synthetic crowd dataset; nothing is generated until used.

    Args:
        root: ignored (the data are generated); accepted so that every reader has the same
            signature.
        split: ``"train"`` (generator indices ``0 .. n_train - 1``) or ``"test"`` (indices
            ``TEST_INDEX_OFFSET + 0 .. n_test - 1``, so the test set does not depend on n_train).
        n_train, n_test: number of images per split.
        seed: dataset seed; the same seed gives the same images.
        config: generator settings (default :class:`SyntheticCrowdConfig()`).
        **config_overrides: fields of :class:`SyntheticCrowdConfig` replacing those of ``config``.

    Returns:
        ``Item`` list with ids ``"<split>/<6-digit position>"``, ``image_path=None``,
        ``size=(H, W)``; items pickle (loaders are ``functools.partial`` of module functions).
    """
    if split not in SPLITS:
        raise DatasetError(f"synthetic: unknown split {split!r}; expected one of {SPLITS}")
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise DatasetError(f"synthetic: {name} must be a non-negative int, got {value!r}")
    if n_train > TEST_INDEX_OFFSET:
        raise DatasetError(f"synthetic: n_train must be <= {TEST_INDEX_OFFSET}, got {n_train}")
    _check_seed_index(seed, 0)
    if config is None:
        config = SyntheticCrowdConfig()
    elif not isinstance(config, SyntheticCrowdConfig):
        raise DatasetError(f"synthetic: config must be a SyntheticCrowdConfig, got {type(config).__name__}")
    if config_overrides:
        known = {f.name for f in dataclasses.fields(SyntheticCrowdConfig)}
        unknown = sorted(set(config_overrides) - known)
        if unknown:
            raise DatasetError(
                f"synthetic: unknown config field(s) {unknown}; known fields: {sorted(known)}"
            )
        config = dataclasses.replace(config, **config_overrides)

    n_items = n_train if split == "train" else n_test
    items = []
    for position in range(n_items):
        index = _split_index(split, position)
        items.append(
            Item(
                id=f"{split}/{position:06d}",
                image_path=None,
                load_points=functools.partial(crowd_points, config, int(seed), index),
                load_image=functools.partial(render_crowd, config, int(seed), index),
                size=config.size,
            )
        )
    return items
