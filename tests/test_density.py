"""Count-exact density targets and 8x8 block sums."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.data.density import DensityConfig, block_sum, density_map, point_sigmas

ADAPTIVE = DensityConfig(mode="adaptive")


@pytest.mark.parametrize("config", [DensityConfig(sigma=15.0), DensityConfig(sigma=1.0), ADAPTIVE])
@pytest.mark.parametrize("shape", [(768, 1024), (37, 53)])
def test_sum_equals_count_with_border_points(config, shape):
    h, w = shape
    rng = np.random.default_rng(1)
    pts = np.c_[rng.uniform(0, w, 300), rng.uniform(0, h, 300)]
    pts[:6] = [[0, 0], [w, h], [w, 0], [0, h], [w / 2, h], [1e-4, h - 1e-4]]  # corners and edges
    density = density_map(pts, shape, config)
    assert density.shape == shape and density.dtype == np.float64 and density.min() >= 0
    assert abs(density.sum() - 300) / 300 < 1e-10
    down = block_sum(density, 8)
    assert down.shape == (-(-h // 8), -(-w // 8))
    assert abs(down.sum() - 300) / 300 < 1e-10


def test_each_point_adds_exactly_one_even_in_a_corner():
    d = density_map(np.array([[0.0, 0.0]]), (20, 20), DensityConfig(sigma=15.0))
    assert d.sum() == pytest.approx(1.0, abs=1e-12)
    assert d[0, 0] == d.max()  # mass stays centred on the point, not spread to keep the tails


def test_kernel_is_centred_and_symmetric():
    d = density_map(np.array([[10.5, 10.5]]), (21, 21), DensityConfig(sigma=2.0))
    assert np.unravel_index(d.argmax(), d.shape) == (10, 10)
    np.testing.assert_allclose(d, d.T, atol=1e-15)
    np.testing.assert_allclose(d, d[::-1, ::-1], atol=1e-15)


def test_fixed_sigma_matches_analytic_gaussian_away_from_borders():
    sigma = 3.0
    d = density_map(np.array([[50.5, 40.5]]), (81, 101), DensityConfig(sigma=sigma))
    rows, cols = np.mgrid[0:81, 0:101] + 0.5
    g = np.exp(-((cols - 50.5) ** 2 + (rows - 40.5) ** 2) / (2 * sigma**2))
    g[np.abs(cols - 50.5) > 4 * sigma] = 0
    g[np.abs(rows - 40.5) > 4 * sigma] = 0
    np.testing.assert_allclose(d, g / g.sum(), atol=1e-12)


def test_adaptive_sigma_is_beta_times_mean_knn_distance():
    # points on a line, 10 px apart: the middle point's 3 nearest are at 10, 10, 20
    pts = np.array([[10.0, 5.0], [20.0, 5.0], [30.0, 5.0], [40.0, 5.0], [50.0, 5.0]])
    sig = point_sigmas(pts, (10, 60), ADAPTIVE)
    np.testing.assert_allclose(sig, 0.3 * np.array([20, 40 / 3, 40 / 3, 40 / 3, 20]))
    # fewer than k neighbours: the ones there are; a lone point: (H + W) / 8
    np.testing.assert_allclose(point_sigmas(pts[:2], (10, 60), ADAPTIVE), [3.0, 3.0])
    np.testing.assert_allclose(point_sigmas(pts[:1], (10, 60), ADAPTIVE), [70 / 8])
    # coincident points are floored, not zero
    assert point_sigmas(np.zeros((4, 2)), (10, 10), ADAPTIVE).min() == 0.5


def test_empty_annotation_gives_zero_map():
    d = density_map(np.zeros((0, 2)), (16, 24))
    assert d.shape == (16, 24) and d.sum() == 0


def test_points_outside_rejected():
    with pytest.raises(AssertionError, match="outside"):
        density_map(np.array([[30.0, 1.0]]), (10, 10))


def test_block_sum_exact_on_known_blocks():
    d = np.arange(20 * 12, dtype=np.float64).reshape(20, 12)
    out = block_sum(d, 8)
    assert out.shape == (3, 2)
    assert out[0, 0] == d[:8, :8].sum() and out[2, 1] == d[16:, 8:].sum()
    assert out.sum() == d.sum()


def test_bad_config_named():
    with pytest.raises(ValueError, match="DensityConfig.mode"):
        DensityConfig(mode="geometry")
    with pytest.raises(ValueError, match="DensityConfig.sigma"):
        DensityConfig(sigma=0)
