"""AL-AC's glue to :mod:`selection`: from a trial's config and pool scores to the selection
library's inputs, and the chosen strategy object."""

from __future__ import annotations

import dataclasses

import numpy as np

import selection
from orchestrator.config import ALConfig, ConfigError
from selection.strategies import DOMAIN_PICKS

#: The paper's "RS (Baseline)": M images drawn at random from the seed (the trial's first m0
#: included, so it pairs with the strategies' trials), trained once for one cycle's epochs from
#: the initial weights, without distribution alignment (``alac.alignment`` is ignored). A trial
#: does this at every size of the schedule (m0, m0 + m, ..., M), each independent of m, so one
#: trial gives a table's RS rows for every M. Not a selection strategy: nothing is selected.
#: (``random`` is the cycle-by-cycle random selection inside the AL loop, for ablations.)
ONE_SHOT_RANDOM = "rs_baseline"


def check_strategy(name: str, domain_pick: str = DOMAIN_PICKS[0]) -> None:
    if name not in selection.STRATEGIES and name != ONE_SHOT_RANDOM:
        known = sorted([*selection.STRATEGIES, ONE_SHOT_RANDOM])
        raise ConfigError(f"alac.strategy: unknown strategy {name!r}; known: {known}")
    if domain_pick not in DOMAIN_PICKS:
        raise ConfigError(f"alac.domain_pick: must be one of {list(DOMAIN_PICKS)}, got {domain_pick!r}")


def effective_alac(al: ALConfig) -> ALConfig:
    """``al`` with the settings its strategy ignores set to a fixed value, so that two grid
    points that run the same trial compare equal (the sweep runs such points once)."""
    return dataclasses.replace(al, alignment=False, alignment_every_cycle=False) if al.strategy == ONE_SHOT_RANDOM else al


def make_strategy(al: ALConfig):
    check_strategy(al.strategy, al.domain_pick)
    if al.strategy == "count_threshold":
        return selection.make_strategy(al.strategy, threshold=al.count_threshold)
    if al.strategy == "domain_classifier":
        return selection.make_strategy(al.strategy, pick=al.domain_pick)
    return selection.make_strategy(al.strategy)


def select_batch(al: ALConfig, pool_scores: dict, labeled_counts: np.ndarray, labeled_signatures: np.ndarray,
                 k: int, rng: np.random.Generator) -> selection.SelectionResult:
    """The selection of the ``k`` images to label next (``result.selected`` = pool rows of
    ``pool_scores``), with the partitions, scores and probabilities behind it.

    One partition per pick (PSSW's m). The classifier probability is passed only when it was
    computed; the pool's true counts only reach the oracle ``count_threshold`` experiment.
    """
    probability = pool_scores["domain_prob"]
    inputs = selection.SelectionInputs(
        pool_counts=pool_scores["count"],
        labeled_counts=labeled_counts,
        pool_signatures=pool_scores["signature"],
        labeled_signatures=labeled_signatures,
        pool_unlabeled_probability=probability if np.all(np.isfinite(probability)) else None,
        pool_true_counts=pool_scores["true_count"] if al.strategy == "count_threshold" else None,
    )
    return make_strategy(al).select(inputs, k, rng)
