"""Jenks and even partitions: exactness, the large-pool approximation, documented edge cases."""

import numpy as np
import pytest

from selection import (
    assign_partitions,
    jenks_breaks,
    jenks_breaks_exact,
    jenks_breaks_segmented,
    partition_even,
    partition_jenks,
)

JENKSPY_EXAMPLE = [1.3, 7.1, 7.3, 2.3, 3.9, 4.1, 7.8, 1.2, 4.3, 7.3, 5.0, 4.3]


def crowd_counts(seed: int, n: int, decimals: int | None = None) -> np.ndarray:
    counts = np.random.default_rng(seed).lognormal(4.0, 1.2, n)
    return counts if decimals is None else np.round(counts, decimals)


def test_jenks_on_the_jenkspy_example():
    np.testing.assert_array_equal(jenks_breaks_exact(JENKSPY_EXAMPLE, 3), [1.2, 2.3, 5.0, 7.8])
    np.testing.assert_array_equal(jenks_breaks_segmented(JENKSPY_EXAMPLE, 3), [1.2, 2.3, 5.0, 7.8])
    parts = partition_jenks(np.array(JENKSPY_EXAMPLE), np.array([0.0, 2.3, 2.31, 99.0]), 3)
    assert parts.method == "jenks-exact"
    np.testing.assert_array_equal(parts.inner_breaks, [2.3, 5.0])
    np.testing.assert_array_equal(parts.pool_partition, [0, 2, 2, 0, 1, 1, 2, 0, 1, 2, 1, 1])
    # labeled: below the pool's min -> 0, equal to a break -> lower, above the max -> last
    np.testing.assert_array_equal(parts.labeled_partition, [0, 0, 1, 2])


@pytest.mark.parametrize("seed, n, n_classes, decimals", [
    (0, 40, 3, 0), (1, 300, 10, None), (2, 1200, 7, 1), (3, 2500, 10, None), (4, 3000, 12, 0),
])
def test_own_fisher_solver_equals_jenkspy_when_every_boundary_is_a_candidate(
    seed, n, n_classes, decimals
):
    values = crowd_counts(seed, n, decimals)
    np.testing.assert_array_equal(
        jenks_breaks_segmented(values, n_classes, max_segments=10**6),
        jenks_breaks_exact(values, n_classes),
    )


@pytest.mark.parametrize("seed, n, max_segments, decimals", [
    (10, 6000, 300, None), (11, 9000, 300, 2), (12, 12000, 1200, None), (13, 8000, 90, 1),
])
def test_segmented_approximation_matches_exact_jenks_on_moderate_inputs(
    seed, n, max_segments, decimals
):
    # 7 to 90 times more distinct values than candidate segments, as for a 1M pool.
    values = crowd_counts(seed, n, decimals)
    assert np.unique(values).size > 7 * max_segments
    exact = jenks_breaks_segmented(values, 10, max_segments=10**6)  # == jenkspy (test above)
    approximate = jenks_breaks_segmented(values, 10, max_segments=max_segments)
    np.testing.assert_array_equal(approximate, exact)


def test_segmented_approximation_matches_jenkspy_directly():
    values = crowd_counts(20, 5000)
    np.testing.assert_array_equal(
        jenks_breaks_segmented(values, 10, max_segments=150), jenks_breaks_exact(values, 10)
    )


def test_jenks_breaks_switches_to_segmented_above_the_exact_size():
    values = crowd_counts(5, 800)
    breaks_small, method_small = jenks_breaks(values, 5, exact_max_values=800)
    breaks_large, method_large = jenks_breaks(values, 5, exact_max_values=799)
    assert (method_small, method_large) == ("jenks-exact", "jenks-segmented")
    np.testing.assert_array_equal(breaks_small, breaks_large)


def test_fewer_distinct_counts_than_m_gives_one_partition_per_value():
    parts = partition_jenks(np.array([3.0, 1.0, 1.0, 2.0, 3.0]), np.array([2.5, 7.0]), 5)
    assert parts.method == "distinct-values" and parts.n_partitions == 3
    np.testing.assert_array_equal(parts.inner_breaks, [1.0, 2.0])
    np.testing.assert_array_equal(parts.pool_partition, [2, 0, 0, 1, 2])
    np.testing.assert_array_equal(parts.labeled_partition, [2, 2])


def test_all_equal_counts_make_one_partition():
    jenks = partition_jenks(np.full(6, 4.0), np.array([1.0, 9.0]), 3)
    even = partition_even(np.full(6, 4.0), np.array([1.0, 9.0]), 3)
    assert jenks.n_partitions == 1 and not jenks.pool_partition.any()
    assert even.n_partitions == 3 and not even.pool_partition.any()


def test_tied_counts_always_share_a_partition():
    values = np.repeat(crowd_counts(6, 60, decimals=0), 5)  # every count five times
    parts = partition_jenks(values, np.empty(0), 10)
    for value in np.unique(values):
        assert np.unique(parts.pool_partition[values == value]).size == 1


def test_even_partition_uses_equal_widths_and_keeps_empty_ranges():
    parts = partition_even(np.array([0.0, 25.0, 25.5, 100.0]), np.array([50.0, 75.1]), 4)
    np.testing.assert_array_equal(parts.inner_breaks, [25.0, 50.0, 75.0])
    np.testing.assert_array_equal(parts.pool_partition, [0, 0, 1, 3])  # range 2 is empty
    np.testing.assert_array_equal(parts.labeled_partition, [1, 3])
    assert parts.n_partitions == 4 and parts.method == "even"


def test_assign_partitions_puts_break_values_in_the_lower_partition():
    np.testing.assert_array_equal(
        assign_partitions(np.array([-1.0, 1.0, 1.5, 2.0, 9.0]), np.array([1.0, 2.0])),
        [0, 0, 1, 1, 2],
    )


@pytest.mark.parametrize("call, message", [
    (lambda: partition_jenks(np.array([1.0, 2.0]), np.empty(0), 0), "m must"),
    (lambda: partition_jenks(np.array([1.0, np.nan]), np.empty(0), 2), "pool_counts"),
    (lambda: partition_jenks(np.empty(0), np.empty(0), 2), "pool_counts"),
    (lambda: partition_even(np.ones((2, 2)), np.empty(0), 2), "pool_counts"),
    (lambda: jenks_breaks_exact(np.array([1.0, 2.0]), 3), "n_classes"),
    (lambda: jenks_breaks_segmented(np.arange(100.0), 10, max_segments=20), "max_segments"),
])
def test_bad_inputs_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
