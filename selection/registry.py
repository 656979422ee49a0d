"""Strategies by name: a read-only mapping, and helpers that build and run them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from selection.containers import SelectionInputs, SelectionResult
from selection.strategies import (
    CountThresholdSelection,
    DomainClassifierSelection,
    EvenPartitionSelection,
    GlobalDiffSelection,
    PsswSelection,
    RandomSelection,
    SelectionStrategy,
)

__all__ = ["STRATEGIES", "UnknownStrategyError", "make_strategy", "select", "pssw"]

STRATEGIES: Mapping[str, type[SelectionStrategy]] = MappingProxyType(
    {
        strategy.name: strategy
        for strategy in (
            RandomSelection,
            PsswSelection,
            EvenPartitionSelection,
            GlobalDiffSelection,
            DomainClassifierSelection,
            CountThresholdSelection,
        )
    }
)


class UnknownStrategyError(ValueError):
    """A strategy name that is not in :data:`STRATEGIES`."""


def make_strategy(name: str, **params: object) -> SelectionStrategy:
    """Build the strategy registered as ``name`` with its parameters.

    Raises:
        UnknownStrategyError: ``name`` is not registered (the message lists the known names).
        ValueError: a parameter the strategy does not have, or a bad value.
    """
    if name not in STRATEGIES:
        raise UnknownStrategyError(
            f"unknown selection strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}"
        )
    strategy_class = STRATEGIES[name]
    accepted = {field.name for field in dataclasses.fields(strategy_class)}
    unexpected = sorted(set(params) - accepted)
    if unexpected:
        raise ValueError(
            f"strategy {name!r} has no parameter(s) {unexpected}; accepted: "
            f"{sorted(accepted) if accepted else 'none'}"
        )
    return strategy_class(**params)


def select(
    name: str, inputs: SelectionInputs, m: int, rng: np.random.Generator, **params: object
) -> SelectionResult:
    """``make_strategy(name, **params).select(inputs, m, rng)``."""
    return make_strategy(name, **params).select(inputs, m, rng)


def pssw(
    pool_counts: np.ndarray,
    pool_signatures: np.ndarray,
    labeled_counts: np.ndarray,
    labeled_signatures: np.ndarray,
    m: int,
    rng: np.random.Generator,
    **params: object,
) -> SelectionResult:
    """PSSW from plain arrays: ``(U,)`` predicted counts, ``(U, S)`` predicted signatures,
    ``(L,)`` true counts, ``(L, S)`` true signatures, ``m`` picks, a Generator."""
    inputs = SelectionInputs(
        pool_counts=pool_counts,
        labeled_counts=labeled_counts,
        pool_signatures=pool_signatures,
        labeled_signatures=labeled_signatures,
    )
    return select("pssw", inputs, m, rng, **params)
