"""Strategies: one interface, reproducible picks, PSSW's guarantees, each documented edge case."""

import numpy as np
import pytest

import selection
from selection import SelectionInputs, UnknownStrategyError, make_strategy, select

ALL_NAMES = ["random", "pssw", "even_partition", "global_diff", "domain_classifier", "count_threshold"]


def crowd_inputs(seed: int, n_pool: int = 300, n_labeled: int = 30) -> SelectionInputs:
    """Pool and labeled images with consistent counts and 85-value signatures."""
    rng = np.random.default_rng(seed)

    def images(n):
        scale = rng.lognormal(-6.0, 1.0, size=(n, 1, 1))
        maps = rng.gamma(0.5, 1.0, size=(n, 16, 24)) * scale * 384
        return maps.sum(axis=(1, 2)), selection.grid_signatures(maps)

    pool_counts, pool_signatures = images(n_pool)
    labeled_counts, labeled_signatures = images(n_labeled)
    return SelectionInputs(
        pool_counts=pool_counts,
        labeled_counts=labeled_counts,
        pool_signatures=pool_signatures,
        labeled_signatures=labeled_signatures,
        pool_unlabeled_probability=rng.random(n_pool),
        pool_true_counts=pool_counts * rng.uniform(0.8, 1.2, n_pool),
    )


def test_registry_holds_every_paper_strategy():
    assert sorted(selection.STRATEGIES) == sorted(ALL_NAMES)
    for name in ALL_NAMES:
        assert make_strategy(name).name == name
    with pytest.raises(TypeError):
        selection.STRATEGIES["mine"] = object  # read-only mapping, no global mutable state


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownStrategyError, match="known: count_threshold, domain_classifier"):
        make_strategy("uncertainty")
    with pytest.raises(ValueError, match="no parameter"):
        make_strategy("pssw", threshold=3)
    with pytest.raises(ValueError, match="count_source"):
        make_strategy("count_threshold", count_source="guess")


@pytest.mark.parametrize("name", ALL_NAMES)
def test_same_seed_gives_same_picks_and_results_are_well_formed(name):
    inputs = crowd_inputs(0)
    first = select(name, inputs, 10, np.random.default_rng(123))
    second = select(name, inputs, 10, np.random.default_rng(123))
    np.testing.assert_array_equal(first.selected, second.selected)
    np.testing.assert_array_equal(first.selected_probability, second.selected_probability)
    assert first.strategy == name and first.selected.dtype == np.int64
    assert first.selected.size == 10 and np.unique(first.selected).size == 10
    assert ((first.selected >= 0) & (first.selected < inputs.n_pool)).all()
    for per_pick in (first.selected_partition, first.selected_score, first.selected_probability):
        assert per_pick.shape == (10,)
    for per_pool in (first.pool_partition, first.pool_score, first.pool_probability):
        assert per_pool.shape == (inputs.n_pool,)
    assert first.labeled_partition.shape == (inputs.n_labeled,)
    np.testing.assert_array_equal(first.selected_partition, first.pool_partition[first.selected])


@pytest.mark.parametrize("name", ["random", "pssw", "even_partition", "global_diff"])
def test_other_seeds_give_other_picks(name):
    inputs = crowd_inputs(1)
    picks = {tuple(select(name, inputs, 10, np.random.default_rng(seed)).selected) for seed in range(5)}
    assert len(picks) > 1


def test_pssw_picks_exactly_one_image_per_partition():
    inputs = crowd_inputs(2)
    for seed in range(10):
        result = select("pssw", inputs, 10, np.random.default_rng(seed))
        assert result.n_partitions == 10 and result.partition_method == "jenks-exact"
        np.testing.assert_array_equal(np.sort(result.selected_partition), np.arange(10))
        np.testing.assert_array_equal(result.selected_score, result.pool_score[result.selected])


def test_pssw_scores_are_gdsim_within_partitions():
    inputs = crowd_inputs(3)
    result = select("pssw", inputs, 8, np.random.default_rng(0))
    expected = selection.gdsim(
        inputs.pool_signatures, inputs.labeled_signatures,
        result.pool_partition, result.labeled_partition,
    ).score
    np.testing.assert_array_equal(result.pool_score, expected)


def test_pssw_never_picks_a_twin_of_a_labeled_image():
    inputs = crowd_inputs(4, n_pool=60, n_labeled=20)
    # Put an exact copy of every labeled image into the pool: GDSIM 0, so probability 0.
    pool_counts = np.concatenate([inputs.pool_counts, inputs.labeled_counts])
    pool_signatures = np.concatenate([inputs.pool_signatures, inputs.labeled_signatures])
    twins = np.arange(60, 80)
    for seed in range(30):
        result = selection.pssw(
            pool_counts, pool_signatures, inputs.labeled_counts, inputs.labeled_signatures,
            10, np.random.default_rng(seed),
        )
        assert not np.isin(result.selected, twins).any()
        assert (result.pool_probability[twins] == 0).all()


def test_draw_probabilities_are_proportional_to_gdsim():
    # Two partitions (counts ~1 and ~100) with three pool images each; GDSIM 1, 2, 3 and 10, 20, 70.
    pool_counts = np.array([1.0, 1.0, 1.0, 100.0, 100.0, 100.0])
    pool_signatures = np.array([[1.0], [2.0], [3.0], [110.0], [120.0], [170.0]])
    labeled_counts = np.array([0.0, 100.0])
    labeled_signatures = np.array([[0.0], [100.0]])
    inputs = SelectionInputs(pool_counts, labeled_counts, pool_signatures, labeled_signatures)
    strategy = make_strategy("pssw")
    first = strategy.select(inputs, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(first.pool_score, [1, 2, 3, 10, 20, 70])
    np.testing.assert_allclose(first.pool_probability, [1 / 6, 2 / 6, 3 / 6, 0.1, 0.2, 0.7])
    rng = np.random.default_rng(2024)
    n_draws = 6000
    counts = np.zeros(6)
    for _ in range(n_draws):
        counts[strategy.select(inputs, 2, rng).selected] += 1
    frequency = counts / n_draws
    # binomial standard error <= 0.0065; allow 4 of them
    np.testing.assert_allclose(frequency, first.pool_probability, atol=0.026)


def test_fewer_distinct_counts_than_m_still_picks_m_images():
    inputs = SelectionInputs(
        pool_counts=np.array([5.0] * 6 + [9.0] * 3),
        labeled_counts=np.array([5.0, 9.0]),
        pool_signatures=np.arange(9.0)[:, None],
        labeled_signatures=np.array([[0.0], [20.0]]),
    )
    result = select("pssw", inputs, 5, np.random.default_rng(0))
    assert result.n_partitions == 2 and result.selected.size == 5
    np.testing.assert_array_equal(result.selected_partition[:2], [0, 1])  # round 1: one each
    # later rounds start with the partition holding the most unpicked images (partition 0)
    assert result.selected_partition[2] == 0
    assert np.unique(result.selected).size == 5


def test_even_partition_fills_up_for_empty_ranges():
    inputs = SelectionInputs(
        pool_counts=np.array([0.0, 1.0, 2.0, 3.0, 100.0]),
        labeled_counts=np.array([1.0]),
        pool_signatures=np.array([[0.0], [1.0], [2.0], [3.0], [100.0]]),
        labeled_signatures=np.array([[1.0]]),
    )
    result = select("even_partition", inputs, 4, np.random.default_rng(1))
    assert result.n_partitions == 4 and result.selected.size == 4
    np.testing.assert_array_equal(result.pool_partition, [0, 0, 0, 0, 3])
    np.testing.assert_array_equal(np.sort(result.selected_partition[:2]), [0, 3])
    assert 4 in result.selected


def test_partition_without_labeled_image_is_scored_against_all_labeled():
    inputs = SelectionInputs(
        pool_counts=np.array([1.0, 2.0, 50.0, 60.0]),
        labeled_counts=np.array([1.5]),
        pool_signatures=np.array([[1.0], [2.0], [50.0], [60.0]]),
        labeled_signatures=np.array([[1.5]]),
    )
    result = select("pssw", inputs, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(result.labeled_partition, [0])
    np.testing.assert_array_equal(result.pool_score, [0.5, 0.5, 48.5, 58.5])
    assert sorted(result.selected_partition) == [0, 1]


def test_without_labeled_images_draws_are_uniform_within_partitions():
    inputs = SelectionInputs(
        pool_counts=np.array([1.0, 1.0, 1.0, 1.0, 30.0, 31.0]),
        labeled_counts=np.empty(0),
        pool_signatures=np.arange(6.0)[:, None],
        labeled_signatures=np.empty((0, 1)),
    )
    result = select("pssw", inputs, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(result.pool_probability, [0.25] * 4 + [0.5] * 2)


def test_global_diff_weights_are_count_differences_within_partitions():
    inputs = SelectionInputs(
        pool_counts=np.array([2.0, 4.0, 7.0, 90.0, 95.0]),
        labeled_counts=np.array([3.0, 100.0]),
    )
    result = select("global_diff", inputs, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(result.pool_partition, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(result.pool_score, [1.0, 1.0, 4.0, 10.0, 5.0])
    np.testing.assert_allclose(result.pool_probability, [1 / 6, 1 / 6, 4 / 6, 2 / 3, 1 / 3])


def test_domain_classifier_takes_the_images_most_surely_unlabeled_by_default():
    """The paper (labels unlabeled 0, labeled 1; "the lowest probabilities") = the highest
    P(unlabeled) in our labeled 0 / unlabeled 1 convention; ``most_labeled`` is the other end."""
    probability = np.array([0.9, 0.2, 0.5, 0.2, 0.1, 0.7, 0.9])
    inputs = SelectionInputs(np.arange(7.0), np.empty(0), pool_unlabeled_probability=probability)
    result = select("domain_classifier", inputs, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(result.selected, [0, 6, 5])  # tie 0.9: lower row first
    np.testing.assert_array_equal(result.selected_score, [0.9, 0.9, 0.7])
    other = select("domain_classifier", inputs, 3, np.random.default_rng(0), pick="most_labeled")
    np.testing.assert_array_equal(other.selected, [4, 1, 3])  # tie 0.2: lower row first
    np.testing.assert_array_equal(other.selected_score, [0.1, 0.2, 0.2])
    with pytest.raises(ValueError, match="pick must be one of"):
        select("domain_classifier", inputs, 3, np.random.default_rng(0), pick="lowest")
    with pytest.raises(ValueError, match="pool_unlabeled_probability"):
        select("domain_classifier", SelectionInputs(np.arange(6.0), np.empty(0)), 3,
               np.random.default_rng(0))


def test_count_threshold_picks_only_images_over_the_threshold():
    true_counts = np.array([50.0, 250.0, 199.0, 201.0, 500.0, 200.0, 10.0])
    inputs = SelectionInputs(np.zeros(7), np.array([300.0]), pool_true_counts=true_counts)
    for seed in range(10):
        result = select("count_threshold", inputs, 3, np.random.default_rng(seed))
        assert set(result.selected) == {1, 3, 4}  # 200 itself is not "over 200"
        np.testing.assert_array_equal(result.selected_partition, [1, 1, 1])
    np.testing.assert_array_equal(result.labeled_partition, [1])
    # too few qualify: all of them, then the highest remaining counts
    result = select("count_threshold", inputs, 5, np.random.default_rng(0))
    assert set(result.selected[:3]) == {1, 3, 4}
    np.testing.assert_array_equal(result.selected[3:], [5, 2])
    # the oracle needs true counts; the predicted variant reads pool_counts
    with pytest.raises(ValueError, match="pool_true_counts"):
        select("count_threshold", SelectionInputs(true_counts, np.empty(0)), 2, np.random.default_rng(0))
    predicted = select("count_threshold", SelectionInputs(true_counts, np.empty(0)), 2,
                       np.random.default_rng(0), count_source="predicted", threshold=240.0)
    assert set(predicted.selected) == {1, 4}


def test_random_selection_probabilities():
    inputs = SelectionInputs(np.arange(8.0), np.empty(0))
    result = select("random", inputs, 3, np.random.default_rng(0))
    np.testing.assert_allclose(result.selected_probability, [1 / 8, 1 / 7, 1 / 6])
    np.testing.assert_allclose(result.pool_probability, np.full(8, 1 / 8))
    assert np.isnan(result.selected_score).all() and (result.selected_partition == -1).all()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_m_larger_than_the_pool_takes_the_whole_pool_and_empty_pool_takes_nothing(name):
    small = crowd_inputs(5, n_pool=4, n_labeled=3)
    assert sorted(select(name, small, 10, np.random.default_rng(0)).selected) == [0, 1, 2, 3]
    empty = SelectionInputs(
        np.empty(0), small.labeled_counts, np.empty((0, 85)), small.labeled_signatures,
        pool_unlabeled_probability=np.empty(0), pool_true_counts=np.empty(0),
    )
    assert select(name, empty, 3, np.random.default_rng(0)).selected.size == 0


def test_large_pool_uses_segmented_jenks_and_still_one_per_partition():
    inputs = crowd_inputs(6, n_pool=6000, n_labeled=100)
    result = select("pssw", inputs, 10, np.random.default_rng(0))
    assert result.partition_method == "jenks-segmented"
    np.testing.assert_array_equal(np.sort(result.selected_partition), np.arange(10))


@pytest.mark.parametrize("build, message", [
    (lambda: SelectionInputs(np.ones(3), np.ones(2), np.ones((3, 85)), np.ones((2, 84))), "labeled_signatures"),
    (lambda: SelectionInputs(np.ones(3), np.ones(2), np.ones((4, 85)), np.ones((2, 85))), "pool_signatures"),
    (lambda: SelectionInputs(np.ones(3), np.ones(2), np.ones((3, 85))), "both"),
    (lambda: SelectionInputs(np.array([1.0, np.nan]), np.ones(2)), "pool_counts"),
    (lambda: SelectionInputs(np.ones(3), np.ones(2), pool_unlabeled_probability=np.array([0.1, 2.0, 0.3])), "\\[0, 1\\]"),
    (lambda: SelectionInputs(np.ones(3), np.ones(2), pool_true_counts=np.ones(2)), "pool_true_counts"),
])
def test_bad_inputs_raise_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_call_arguments_raise_value_error():
    inputs = crowd_inputs(7, n_pool=20, n_labeled=5)
    with pytest.raises(ValueError, match="m must"):
        select("pssw", inputs, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="Generator"):
        select("pssw", inputs, 2, 42)
    with pytest.raises(ValueError, match="pool_signatures"):
        select("pssw", SelectionInputs(np.ones(3), np.ones(2)), 2, np.random.default_rng(0))


def test_score_probabilities_edge_cases():
    np.testing.assert_array_equal(selection.score_probabilities(np.array([0.0, 1.0, 3.0])), [0, 0.25, 0.75])
    # every image has a labeled twin (all zero): uniform
    np.testing.assert_array_equal(selection.score_probabilities(np.zeros(4)), [0.25] * 4)
    # no labeled image at all (+inf): uniform over the infinite ones
    np.testing.assert_array_equal(
        selection.score_probabilities(np.array([np.inf, 2.0, np.inf])), [0.5, 0.0, 0.5]
    )


def test_all_zero_gdsim_partition_is_drawn_uniformly():
    inputs = SelectionInputs(
        pool_counts=np.array([1.0, 1.0, 1.0, 9.0]),
        labeled_counts=np.array([1.0, 9.0]),
        pool_signatures=np.array([[1.0], [1.0], [1.0], [9.0]]),
        labeled_signatures=np.array([[1.0], [9.0]]),
    )
    result = select("pssw", inputs, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(result.pool_score, [0, 0, 0, 0])
    np.testing.assert_allclose(result.pool_probability, [1 / 3, 1 / 3, 1 / 3, 1.0])


def test_draw_per_partition_rejects_more_picks_than_images():
    with pytest.raises(ValueError, match="n_picks"):
        selection.draw_per_partition(np.zeros(3, dtype=int), np.ones(3), 4, np.random.default_rng(0))
