"""Weighted random draws of one image per partition (the "W" of PSSW).

Within a partition the draw probabilities are proportional to the scores (AL-AC 3.3: "convert
the GDSIM scores to probabilities and adopt weighted random selection"). Decisions:

* All scores of a group zero (every image has a labeled twin): uniform over the group.
* Some scores ``+inf`` (no labeled image at all): uniform over the infinite ones.
* A zero score otherwise gets probability 0: an image identical to a labeled one is never
  drawn while a dissimilar one remains.
* **Fewer non-empty partitions than picks** (fewer distinct counts than m, empty even-width
  ranges): after the first round (one pick per non-empty partition, partitions in ascending
  order) further rounds draw one more image from partitions in order of how many unpicked
  images they still hold (most first, ties by partition index), with probabilities
  renormalised over what remains, until ``n_picks`` images are chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PartitionDraws", "score_probabilities", "draw_per_partition"]


@dataclass(frozen=True)
class PartitionDraws:
    """Result of :func:`draw_per_partition`.

    Attributes:
        selected: ``(k,)`` int64 pool rows in pick order.
        probability: ``(k,)`` float64 probability of each pick at its draw.
        first_probability: ``(U,)`` float64 probability of every image at its partition's
            first draw.
    """

    selected: np.ndarray
    probability: np.ndarray
    first_probability: np.ndarray


def score_probabilities(scores: np.ndarray) -> np.ndarray:
    """``(n,)`` non-negative scores -> ``(n,)`` draw probabilities summing to 1 (rules above)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores.copy()
    infinite = np.isposinf(scores)
    if infinite.any():
        return infinite / infinite.sum()
    total = scores.sum()
    if total > 0:
        return scores / total
    return np.full(scores.size, 1.0 / scores.size)


def draw_per_partition(
    partition: np.ndarray, scores: np.ndarray, n_picks: int, rng: np.random.Generator
) -> PartitionDraws:
    """Draw ``n_picks`` distinct pool images, one per partition per round, weighted by score.

    Args:
        partition: ``(U,)`` int partition of each pool image.
        scores: ``(U,)`` non-negative float64 scores (higher = more likely).
        n_picks: images to draw, ``0 <= n_picks <= U``.
        rng: the only source of randomness (one ``rng.random()`` per draw).
    """
    n_pool = partition.shape[0]
    if scores.shape != (n_pool,):
        raise ValueError(f"scores must have shape ({n_pool},), got {scores.shape}")
    if not 0 <= n_picks <= n_pool:
        raise ValueError(f"n_picks must lie in 0..{n_pool} (pool size), got {n_picks}")
    order = np.argsort(partition, kind="stable")
    _, group_starts = np.unique(partition[order], return_index=True)
    groups = np.split(order, group_starts[1:]) if n_pool else []
    first_probability = np.zeros(n_pool, dtype=np.float64)
    selected: list[int] = []
    probability: list[float] = []

    def draw_from(group_index: int) -> None:
        members = groups[group_index]
        group_probability = score_probabilities(scores[members])
        position = _weighted_index(group_probability, rng)
        selected.append(int(members[position]))
        probability.append(float(group_probability[position]))
        groups[group_index] = np.delete(members, position)

    for group_index, members in enumerate(groups):
        first_probability[members] = score_probabilities(scores[members])
        if len(selected) < n_picks:
            draw_from(group_index)
    while len(selected) < n_picks:
        sizes = np.array([members.size for members in groups])
        for group_index in np.argsort(-sizes, kind="stable"):
            if len(selected) == n_picks or sizes[group_index] == 0:
                break
            draw_from(int(group_index))
    return PartitionDraws(
        selected=np.asarray(selected, dtype=np.int64),
        probability=np.asarray(probability, dtype=np.float64),
        first_probability=first_probability,
    )


def _weighted_index(probability: np.ndarray, rng: np.random.Generator) -> int:
    """Index drawn with the given probabilities; zero-probability entries are never drawn."""
    cumulative = np.cumsum(probability)
    position = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(position, probability.size - 1)
