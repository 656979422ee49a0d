"""Cell sums, the Canny edge pseudo-density and the CSS-CCNN++ sparse/dense split."""

import cv2
import numpy as np
import pytest
import torch

from ot import (
    EdgeDensityConfig,
    PowerLawPriorConfig,
    SinkhornConfig,
    build_prior,
    cell_counts,
    cell_counts_numpy,
    css_ccnn_plus_plus_loss,
    dense_rank,
    edge_map,
    edge_pseudo_counts,
    edge_pseudo_density,
    sinkhorn_loss,
    sparse_mask,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _textured_crops(num_crops: int, seed: int) -> np.ndarray:
    """224 × 224 RGB crops; each 64 × 64 cell holds a random number (0..12) of white squares
    on black, so cells differ in edge density."""
    rng = np.random.default_rng(seed)
    crops = np.zeros((num_crops, 224, 224, 3), dtype=np.uint8)
    for crop in crops:
        for row in range(3):
            for column in range(3):
                for _ in range(int(rng.integers(0, 13))):
                    top = row * 64 + int(rng.integers(0, 56))
                    left = column * 64 + int(rng.integers(0, 56))
                    crop[top:top + 6, left:left + 6] = 255
    return crops


# ---------------------------------------------------------------------------- cell sums

def test_cell_counts_hand_made():
    density = torch.zeros(2, 1, 28, 28, dtype=torch.float64)
    density[0, 0, 9, 17] = 1.5  # row 1, column 2 -> cell 5
    density[0, 0, 26, 3] = 5.0  # beyond the 24 × 24 covered by cells: dropped
    density[1, 0, :24, :24] = 1.0
    counts = cell_counts(density)
    assert counts.shape == (2, 9)
    expected = torch.zeros(2, 9, dtype=torch.float64)
    expected[0, 5] = 1.5
    expected[1] = 64.0
    torch.testing.assert_close(counts, expected)
    torch.testing.assert_close(cell_counts(density[:, 0]), expected)  # (B, H, W) also works
    np.testing.assert_allclose(cell_counts_numpy(density[:, 0].numpy()), expected.numpy())


def test_cell_counts_gradient_covers_exactly_the_cells():
    density = torch.rand(3, 1, 28, 28, requires_grad=True)
    cell_counts(density).sum().backward()
    expected = torch.zeros(3, 1, 28, 28)
    expected[..., :24, :24] = 1.0
    torch.testing.assert_close(density.grad, expected)


@pytest.mark.parametrize("call", [
    lambda: cell_counts(torch.zeros(2, 2, 28, 28)),
    lambda: cell_counts(torch.zeros(28, 28)),
    lambda: cell_counts(torch.zeros(1, 1, 7, 28)),
    lambda: cell_counts(torch.zeros(1, 1, 28, 28), cell_size=0),
    lambda: cell_counts(np.zeros((1, 28, 28))),
    lambda: cell_counts_numpy(np.zeros((28, 28))),
])
def test_cell_counts_bad_input(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------- edge density

def test_edge_map_is_the_reference_opencv_pipeline():
    crop = _textured_crops(1, 0)[0]
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    manual = cv2.GaussianBlur(cv2.resize(cv2.Canny(gray, 225, 250), (28, 28)), (5, 5), 2)
    result = edge_map(crop)
    assert result.shape == (28, 28) and result.dtype == np.uint8 and result.max() > 0
    np.testing.assert_array_equal(result, manual)


def test_edge_map_reads_rgb_channel_order():
    # Gray = 0.299 R + 0.587 G + 0.114 B: a pure red step (gray 76) passes Canny(225, 250),
    # a pure blue one (gray 29) does not. Reading the crop as BGR would swap the outcomes.
    # (Many squares: the 1/8 bilinear resize samples only 2 of every 8 rows and columns, so a
    # single square's one-pixel edges can vanish, as in the reference.)
    squares = _textured_crops(1, 5)[0, :, :, 0] > 0
    red, blue = np.zeros((2, 224, 224, 3), dtype=np.uint8)
    red[squares, 0] = 255
    blue[squares, 2] = 255
    assert edge_map(red).max() > 0
    assert edge_map(blue).max() == 0
    # the reference's COLOR_BGR2GRAY on RGB data weighs blue as red: the outcomes swap
    reference = EdgeDensityConfig(grayscale="reference_bgr")
    assert edge_map(red, reference).max() == 0 and edge_map(blue, reference).max() > 0
    np.testing.assert_array_equal(edge_map(blue, reference), edge_map(red))
    with pytest.raises(ValueError, match="grayscale must be one of"):
        EdgeDensityConfig(grayscale="bgr")


def test_pseudo_density_is_scaled_by_the_batch_maximum():
    crops = _textured_crops(3, 1)
    raw = np.stack([edge_map(crop) for crop in crops]).astype(np.float32)
    density = edge_pseudo_density(crops)
    assert density.shape == (3, 28, 28) and density.dtype == np.float32
    assert density.max() == pytest.approx(1.0)
    np.testing.assert_allclose(density, raw / raw.max(), rtol=1e-6)
    assert np.all(edge_pseudo_density(np.zeros((2, 224, 224, 3), np.uint8)) == 0)


def test_pseudo_counts_rank_textured_cells_above_flat_ones():
    crop = np.zeros((1, 224, 224, 3), dtype=np.uint8)
    for offset in range(4, 60, 10):  # stripes in cell 0 (top left) only
        crop[0, offset:offset + 4, 0:60] = 255
    counts = edge_pseudo_counts(crop)
    assert counts.shape == (1, 9) and counts.dtype == np.float32
    assert counts[0, 0] > 0 and np.all(counts[0, [2, 5, 6, 7, 8]] == 0)
    assert counts[0, 0] == counts[0].max()


@pytest.mark.parametrize("call", [
    lambda: edge_pseudo_density(np.zeros((2, 224, 224, 3), dtype=np.float32)),
    lambda: edge_pseudo_density(np.zeros((224, 224, 3), dtype=np.uint8)),
    lambda: edge_pseudo_density(np.zeros((1, 224, 224), dtype=np.uint8)),
    lambda: edge_pseudo_density(np.zeros((1, 4, 4, 3), dtype=np.uint8)),
    lambda: EdgeDensityConfig(blur_kernel_size=4),
    lambda: EdgeDensityConfig(canny_low=300, canny_high=250),
])
def test_edge_bad_input(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------- the split

def test_sparse_mask_follows_the_reference_percentile():
    assert (dense_rank(10), dense_rank(288), dense_rank(1568)) == (7, 201, 1097)
    values = np.array([5.0, 0.0, 9.0, 2.0, 7.0, 1.0, 3.0, 8.0, 4.0, 6.0])
    expected = values < 3.0  # 7th largest of 0..9 is 3: {0, 1, 2} are sparse
    np.testing.assert_array_equal(sparse_mask(values), expected)
    np.testing.assert_array_equal(sparse_mask(torch.from_numpy(values)).numpy(), expected)
    rng = np.random.default_rng(0)
    for size, num_sparse in ((288, 87), (1568, 471)):
        random_values = rng.random(size)
        mask = sparse_mask(random_values)
        assert mask.sum() == num_sparse
        assert random_values[mask].max() < random_values[~mask].min()
        np.testing.assert_array_equal(sparse_mask(torch.from_numpy(random_values)).numpy(), mask)
    assert not sparse_mask(np.zeros(50)).any()  # ties at the threshold are dense
    assert not sparse_mask(np.array([1.0])).any()  # k = 0: nothing is sparse


def test_edge_split_percentiles_on_a_batch_of_crops():
    crops = _textured_crops(32, 2)
    pseudo = edge_pseudo_counts(crops)
    assert pseudo.shape == (32, 9)
    mask = sparse_mask(pseudo)
    flat = pseudo.reshape(-1)
    assert 0.25 <= mask.mean() <= 0.31  # about the 30th percentile (87 of 288 without ties)
    assert flat[mask].max() < flat[~mask].min()
    prior = build_prior(PowerLawPriorConfig(3000, 482))
    samples = prior.sample(1568, np.random.default_rng(0))
    prior_mask = sparse_mask(samples)
    assert prior_mask.sum() == 471
    assert samples[prior_mask].max() < samples[~prior_mask].min()
    assert np.quantile(samples, 0.3) == pytest.approx(samples[~prior_mask].min(), rel=0.05)


def test_plus_plus_loss_sums_the_sparse_and_dense_terms():
    rng = np.random.default_rng(3)
    pseudo = rng.random((8, 9))
    prior = torch.from_numpy(build_prior(PowerLawPriorConfig(3000, 482)).sample(
        200, np.random.default_rng(4)))
    predictions = torch.from_numpy(rng.random((8, 9)) * 6).requires_grad_()
    config = SinkhornConfig(compute_dtype=torch.float64)
    result = css_ccnn_plus_plus_loss(predictions, pseudo, prior, config)
    assert result.used_split
    cells, samples = sparse_mask(pseudo), sparse_mask(prior).numpy()
    assert (result.num_sparse_cells, result.num_sparse_prior_samples) == (22, 60)
    flat = predictions.detach().reshape(-1)
    sparse = sinkhorn_loss(flat[torch.from_numpy(cells)], prior[samples], config)
    dense = sinkhorn_loss(flat[~torch.from_numpy(cells)], prior[~samples], config)
    assert float(result.sparse.detach()) == pytest.approx(float(sparse), rel=1e-12)
    assert float(result.dense.detach()) == pytest.approx(float(dense), rel=1e-12)
    assert float(result.total.detach()) == pytest.approx(float(sparse + dense), rel=1e-12)
    result.total.backward()
    assert predictions.grad.shape == (8, 9) and bool((predictions.grad != 0).all())


def test_plus_plus_loss_falls_back_to_one_term_without_sparse_cells():
    prior = build_prior(PowerLawPriorConfig(3000, 482)).sample(100, np.random.default_rng(5))
    predictions = torch.linspace(0.0, 5.0, 18, dtype=torch.float64).requires_grad_()
    pseudo = np.zeros(18)
    pseudo[:2] = [0.5, 0.1]  # 16 zeros: the 12th largest value is 0, so nothing is sparse
    result = css_ccnn_plus_plus_loss(predictions, pseudo, prior)
    assert not result.used_split and result.sparse is None and result.dense is None
    assert result.num_sparse_cells == 0
    assert float(result.total.detach()) == pytest.approx(
        float(sinkhorn_loss(predictions.detach(), prior)))
    pseudo_two_sparse = np.arange(18, dtype=float)
    pseudo_two_sparse[2:] += 100  # 6 sparse by rank, but require more than that:
    assert not css_ccnn_plus_plus_loss(predictions, pseudo_two_sparse, prior,
                                       min_sparse_cells=7).used_split


@pytest.mark.parametrize("call", [
    lambda: css_ccnn_plus_plus_loss(torch.ones(9), np.ones(8), np.ones(20)),
    lambda: css_ccnn_plus_plus_loss(torch.ones(9), np.ones(9), np.ones(20), sparse_fraction=1.2),
    lambda: css_ccnn_plus_plus_loss(torch.ones(9), np.ones(9), np.ones(20), min_sparse_cells=0),
    lambda: css_ccnn_plus_plus_loss(np.ones(9), np.ones(9), np.ones(20)),
    lambda: sparse_mask([1.0, 2.0]),
])
def test_split_bad_input(call):
    with pytest.raises(ValueError):
        call()
