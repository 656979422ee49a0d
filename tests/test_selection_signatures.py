"""Grid signatures: hand-made maps with known cell counts, mass conservation, batching."""

import numpy as np
import pytest

from selection import cell_overlap_weights, grid_signature, grid_signatures, signature_length


def levels_of(signature: np.ndarray, levels: int) -> list[np.ndarray]:
    """Split a signature into its levels, each as a (2^L, 2^L) grid."""
    out, start = [], 0
    for level in range(levels + 1):
        side = 2**level
        out.append(signature[start : start + side * side].reshape(side, side))
        start += side * side
    return out


def test_signature_length_counts_cells_of_all_levels():
    assert [signature_length(levels) for levels in range(4)] == [1, 5, 21, 85]


def test_divisible_map_gives_block_sums_at_every_level():
    density = np.arange(16, dtype=np.float64).reshape(4, 4)
    signature = grid_signature(density, levels=3)
    assert signature.shape == (85,) and signature.dtype == np.float64
    level0, level1, level2, level3 = levels_of(signature, 3)
    assert level0[0, 0] == 120.0
    # quadrants, row-major: top-left, top-right, bottom-left, bottom-right
    np.testing.assert_array_equal(level1, [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]])
    np.testing.assert_array_equal(level2, density)  # 4 x 4 cells of one pixel each
    # level 3: every pixel cut into four quarter-pixel cells of a quarter of its mass
    np.testing.assert_array_equal(level3, np.kron(density, np.ones((2, 2))) / 4)


def test_pixel_cut_by_cell_borders_is_split_by_area():
    # 3 x 3 map, one person in the centre pixel [1, 2) x [1, 2).
    density = np.zeros((3, 3))
    density[1, 1] = 1.0
    level0, level1, level2, level3 = levels_of(grid_signature(density, levels=3), 3)
    assert level0[0, 0] == 1.0
    np.testing.assert_array_equal(level1, np.full((2, 2), 0.25))  # border at 1.5 halves it
    expected2 = np.zeros((4, 4))
    expected2[1:3, 1:3] = 0.25  # borders at 0.75, 1.5, 2.25
    np.testing.assert_array_equal(level2, expected2)
    # borders at multiples of 0.375: the pixel covers 0.125, 0.375, 0.375, 0.125 of cells 2..5
    along = np.array([0, 0, 0.125, 0.375, 0.375, 0.125, 0, 0])
    np.testing.assert_array_equal(level3, np.outer(along, along))


def test_rectangular_uniform_map_gives_cells_proportional_to_area():
    density = np.ones((3, 5))
    level0, level1, level2, _ = levels_of(grid_signature(density, levels=3), 3)
    assert level0[0, 0] == 15.0
    np.testing.assert_array_equal(level1, np.full((2, 2), 1.5 * 2.5))
    np.testing.assert_array_equal(level2, np.full((4, 4), 0.75 * 1.25))


def test_map_smaller_than_the_grid_spreads_each_pixel_over_its_cells():
    signature = grid_signature(np.array([[64.0]]), levels=3)
    np.testing.assert_array_equal(levels_of(signature, 3)[3], np.ones((8, 8)))


@pytest.mark.parametrize("shape", [(37, 53), (8, 8), (1, 9), (101, 7)])
def test_every_level_conserves_the_map_total(shape):
    density = np.random.default_rng(0).gamma(0.5, 0.01, size=shape)
    levels = levels_of(grid_signature(density, levels=3), 3)
    total = density.sum()
    for level in levels:
        assert level.sum() == pytest.approx(total, rel=1e-12)
    assert levels[0][0, 0] == pytest.approx(total, rel=1e-12)
    # coarser cells are exact 2 x 2 unions of finer cells
    for coarse, fine in zip(levels[:-1], levels[1:]):
        side = coarse.shape[0]
        np.testing.assert_array_equal(coarse, fine.reshape(side, 2, side, 2).sum(axis=(1, 3)))


def test_overlap_weights_columns_sum_to_one():
    weights = cell_overlap_weights(7, 8)
    assert weights.shape == (8, 7)
    np.testing.assert_array_equal(weights.sum(axis=0), np.ones(7))
    np.testing.assert_array_equal(weights.sum(axis=1), np.full(8, 7 / 8))


def test_batched_signatures_equal_single_ones():
    rng = np.random.default_rng(1)
    stack = rng.random((4, 12, 20)).astype(np.float32)
    batched = grid_signatures(stack, levels=2)
    assert batched.shape == (4, 21) and batched.dtype == np.float64
    for index in range(4):
        np.testing.assert_allclose(batched[index], grid_signature(stack[index], levels=2), rtol=1e-12)
    ragged = [rng.random((5, 9)), rng.random((16, 3))]
    rows = grid_signatures(ragged, levels=3)
    for index, density in enumerate(ragged):
        np.testing.assert_array_equal(rows[index], grid_signature(density, levels=3))


@pytest.mark.parametrize(
    "density, levels, message",
    [
        (np.ones(5), 3, "density_map"),
        (np.full((3, 3), np.nan), 3, "finite"),
        (np.ones((0, 4)), 3, "at least one pixel"),
        (np.ones((4, 4)), -1, "levels"),
        (np.ones((4, 4)), 2.5, "levels"),
    ],
)
def test_bad_maps_raise_value_error(density, levels, message):
    with pytest.raises(ValueError, match=message):
        grid_signature(density, levels=levels)
