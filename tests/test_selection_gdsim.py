"""GDSIM: equals the literal loop bit for bit, edge cases, pruning is exact."""

import numpy as np
import pytest

from selection import gdsim, gdsim_naive, grid_signatures, min_l1_distance


def random_case(seed: int, n_pool: int, n_labeled: int, n_cells: int = 85):
    rng = np.random.default_rng(seed)
    pool = rng.gamma(0.7, 2.0, size=(n_pool, n_cells))
    labeled = rng.gamma(0.7, 2.0, size=(n_labeled, n_cells))
    pool_partition = rng.integers(0, 4, n_pool)
    labeled_partition = rng.integers(0, 5, n_labeled)  # partition 4 has no pool image
    labeled_partition[labeled_partition == 3] = 2  # partition 3 has no labeled image
    return pool, labeled, pool_partition, labeled_partition


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_gdsim_is_bit_identical_to_the_naive_loop(seed):
    pool, labeled, pool_partition, labeled_partition = random_case(seed, 60, 25)
    naive = gdsim_naive(pool, labeled, pool_partition, labeled_partition)
    for prune_min_pairs in (0, 10**9):  # with and without the row-sum pruning
        fast = gdsim(pool, labeled, pool_partition, labeled_partition, prune_min_pairs=prune_min_pairs)
        assert fast.score.dtype == np.float64
        np.testing.assert_array_equal(fast.score, naive)  # exact float64 equality, not allclose
    assert np.isfinite(fast.score).all()


def test_gdsim_on_real_signatures_matches_naive_without_partitions():
    rng = np.random.default_rng(3)
    pool = grid_signatures(rng.gamma(0.3, 0.05, size=(30, 24, 40)))
    labeled = grid_signatures(rng.gamma(0.3, 0.05, size=(7, 24, 40)))
    np.testing.assert_array_equal(gdsim(pool, labeled).score, gdsim_naive(pool, labeled))


def test_hand_made_scores_and_nearest_labeled():
    pool = np.array([[1.0, 2.0], [5.0, 5.0]])
    labeled = np.array([[1.0, 1.0], [4.0, 6.0]])
    result = gdsim(pool, labeled)
    np.testing.assert_array_equal(result.score, [1.0, 2.0])  # |0|+|1|, |1|+|1|
    np.testing.assert_array_equal(result.nearest_labeled, [0, 1])
    assert not result.fallback.any()


def test_partition_restricts_the_minimum_to_its_labeled_images():
    pool = np.array([[0.0], [10.0]])
    labeled = np.array([[1.0], [9.0], [100.0]])
    result = gdsim(pool, labeled, np.array([0, 1]), np.array([1, 0, 1]))
    # pool 0 (partition 0) only sees labeled 1 (9.0); pool 1 sees labeled 0 and 2
    np.testing.assert_array_equal(result.score, [9.0, 9.0])
    np.testing.assert_array_equal(result.nearest_labeled, [1, 0])


def test_partition_without_labeled_images_falls_back_to_all_labeled():
    pool = np.array([[0.0], [50.0]])
    labeled = np.array([[3.0], [40.0]])
    result = gdsim(pool, labeled, np.array([0, 1]), np.array([0, 0]))
    np.testing.assert_array_equal(result.score, [3.0, 10.0])
    np.testing.assert_array_equal(result.fallback, [False, True])
    np.testing.assert_array_equal(result.nearest_labeled, [0, 1])


def test_no_labeled_image_at_all_gives_infinite_scores():
    result = gdsim(np.ones((3, 5)), np.empty((0, 5)))
    assert np.isposinf(result.score).all()
    np.testing.assert_array_equal(result.nearest_labeled, [-1, -1, -1])
    assert np.isposinf(gdsim_naive(np.ones((3, 5)), np.empty((0, 5)))).all()


@pytest.mark.parametrize("kind", ["gamma", "signed", "integer_ties"])
def test_pruning_changes_neither_scores_nor_argmins(kind):
    rng = np.random.default_rng(7)
    shape_pool, shape_labeled = (2500, 21), (150, 21)
    if kind == "gamma":
        pool, labeled = rng.gamma(1.0, 3.0, shape_pool), rng.gamma(1.0, 3.0, shape_labeled)
    elif kind == "signed":  # regressors may predict negative density
        pool, labeled = rng.normal(0, 1, shape_pool), rng.normal(0, 1, shape_labeled)
    else:  # many exact ties: the lowest labeled row must win
        pool = rng.integers(0, 2, shape_pool).astype(float)
        labeled = rng.integers(0, 2, shape_labeled).astype(float)
    pool_partition = rng.integers(0, 3, shape_pool[0])
    labeled_partition = rng.integers(0, 3, shape_labeled[0])
    pruned = gdsim(
        pool, labeled, pool_partition, labeled_partition, max_block_elements=4096, prune_min_pairs=0
    )
    full = gdsim(pool, labeled, pool_partition, labeled_partition, prune=False)
    np.testing.assert_array_equal(pruned.score, full.score)
    np.testing.assert_array_equal(pruned.nearest_labeled, full.nearest_labeled)


def test_min_l1_distance_blocks_do_not_change_the_result():
    rng = np.random.default_rng(4)
    queries, references = rng.random((37, 85)), rng.random((11, 85))
    whole = min_l1_distance(queries, references)
    tiny_blocks = min_l1_distance(queries, references, max_block_elements=1)
    np.testing.assert_array_equal(whole[0], tiny_blocks[0])
    np.testing.assert_array_equal(whole[1], tiny_blocks[1])


@pytest.mark.parametrize(
    "pool, labeled, pool_partition, labeled_partition, message",
    [
        (np.ones((3, 85)), np.ones((2, 84)), None, None, "labeled_signatures"),
        (np.ones(85), np.ones((2, 85)), None, None, "pool_signatures"),
        (np.ones((3, 85)), np.ones((2, 85)), np.zeros(3), None, "both"),
        (np.ones((3, 85)), np.ones((2, 85)), np.zeros(4), np.zeros(2), "pool_partition"),
    ],
)
def test_bad_inputs_raise_value_error(pool, labeled, pool_partition, labeled_partition, message):
    with pytest.raises(ValueError, match=message):
        gdsim(pool, labeled, pool_partition, labeled_partition)
