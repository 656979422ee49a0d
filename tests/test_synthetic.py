"""Synthetic crowds: determinism, geometry, count distribution, config errors, items, learnability."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from orchestrator.data import synthetic
from orchestrator.data.base import DatasetError, Item
from orchestrator.data.synthetic import (
    TEST_INDEX_OFFSET,
    CrowdLayout,
    SyntheticCrowdConfig,
    crowd_layout,
    crowd_points,
    read_synthetic,
    render_crowd,
)
from orchestrator.data.synthetic_render import render_layout

DEFAULT = SyntheticCrowdConfig()


# --------------------------------------------------------------------------- determinism


def test_same_seed_and_index_give_identical_image_and_points():
    for index in (0, 7):
        a_img, b_img = render_crowd(DEFAULT, 3, index), render_crowd(DEFAULT, 3, index)
        assert a_img.tobytes() == b_img.tobytes()
        np.testing.assert_array_equal(crowd_points(DEFAULT, 3, index), crowd_points(DEFAULT, 3, index))


def test_different_index_or_seed_gives_different_image_and_points():
    base_img, base_pts = render_crowd(DEFAULT, 3, 0), crowd_points(DEFAULT, 3, 0)
    for seed, index in ((3, 1), (4, 0)):
        assert render_crowd(DEFAULT, seed, index).tobytes() != base_img.tobytes()
        other = crowd_points(DEFAULT, seed, index)
        assert other.shape != base_pts.shape or not np.array_equal(other, base_pts)


def test_generation_ignores_global_random_state():
    np.random.seed(1)
    first = render_crowd(DEFAULT, 0, 5)
    np.random.seed(2)
    np.random.random(100)
    assert render_crowd(DEFAULT, 0, 5).tobytes() == first.tobytes()


def test_bad_seed_or_index_is_rejected_by_name():
    with pytest.raises(ValueError, match="seed"):
        crowd_points(DEFAULT, -1, 0)
    with pytest.raises(ValueError, match="index"):
        render_crowd(DEFAULT, 0, 1.5)


# --------------------------------------------------------------------------- geometry


def test_points_are_float64_inside_the_image_with_count_in_range():
    cfg = SyntheticCrowdConfig(height=96, width=160, min_count=3, max_count=300)
    for index in range(40):
        layout = crowd_layout(cfg, 11, index)
        pts = layout.points
        assert pts.dtype == np.float64 and pts.ndim == 2 and pts.shape[1] == 2
        assert 3 <= len(pts) <= 300
        assert np.all(pts[:, 0] >= 0.5) and np.all(pts[:, 0] <= 160 - 0.5)
        assert np.all(pts[:, 1] >= 0.5) and np.all(pts[:, 1] <= 96 - 0.5)
        assert layout.head_radii.shape == (len(pts),) and np.all(layout.head_radii >= 1.0)
        np.testing.assert_array_equal(pts, crowd_points(cfg, 11, index))


def test_rendered_image_shape_and_dtype_follow_the_config():
    img = render_crowd(SyntheticCrowdConfig(height=64, width=96, max_count=50), 0, 0)
    assert img.shape == (64, 96, 3) and img.dtype == np.uint8


def test_radius_at_row_is_linear_from_top_to_bottom():
    cfg = SyntheticCrowdConfig(height=200, head_radius=8.0, perspective=0.75)
    np.testing.assert_allclose(cfg.radius_at_row(np.array([0.0, 100.0, 200.0])), [2.0, 5.0, 8.0])


def test_perspective_makes_heads_larger_in_the_bottom_third():
    ys, radii = [], []
    for index in range(30):
        layout = crowd_layout(DEFAULT, 0, index)
        ys.append(layout.points[:, 1])
        radii.append(layout.head_radii)
    y, r = np.concatenate(ys), np.concatenate(radii)
    top, bottom = r[y < DEFAULT.height / 3], r[y > 2 * DEFAULT.height / 3]
    assert len(top) > 100 and len(bottom) > 100
    # Nominal ratio: (1 - 0.6 / 6) / (1 - 0.6 * 5 / 6) = 1.8 at the thirds' centres.
    assert bottom.mean() > 1.6 * top.mean()
    flat = SyntheticCrowdConfig(perspective=0.0, radius_jitter=0.0)
    np.testing.assert_allclose(crowd_layout(flat, 0, 1).head_radii, flat.head_radius)


def test_heads_are_drawn_centred_on_their_points():
    # Plain scene: no texture, lighting, noise, distractors or bodies, no perspective.
    cfg = SyntheticCrowdConfig(
        head_radius=9.0, perspective=0.0, radius_jitter=0.0, texture_contrast=0.0,
        lighting_strength=0.0, noise_std=0.0, min_distractors=0, max_distractors=0,
        draw_bodies=False, height=64, width=64,
    )
    empty = CrowdLayout(np.zeros((0, 2)), np.zeros(0), 64, 64)
    for seed, centre in enumerate([(20.3, 31.7), (40.5, 22.25), (31.0, 45.8)]):
        layout = CrowdLayout(np.array([centre]), np.array([9.0]), 64, 64)
        with_head = render_layout(cfg, layout, np.random.default_rng(seed)).astype(int)
        without = render_layout(cfg, empty, np.random.default_rng(seed)).astype(int)
        changed = np.abs(with_head - without).max(axis=2) > 12
        rows, cols = np.nonzero(changed)
        # Pixel (r, c) covers [c, c+1) x [r, r+1): its centre is (c + 0.5, r + 0.5).
        assert abs(cols.mean() + 0.5 - centre[0]) < 0.6 and abs(rows.mean() + 0.5 - centre[1]) < 0.6
        assert 0.8 * np.pi * 81 < changed.sum() < 1.4 * np.pi * 81  # a disc of radius 9, edges blurred


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize("distribution", ["log_uniform", "pareto"])
def test_counts_are_long_tailed_and_cover_the_range(distribution):
    cfg = SyntheticCrowdConfig(count_distribution=distribution, min_count=5, max_count=400)
    counts = np.array([len(crowd_points(cfg, 0, i)) for i in range(300)])
    assert counts.min() >= 5 and counts.max() <= 400
    assert counts.mean() > 1.3 * np.median(counts)  # long right tail
    assert np.mean(counts < 20) > 0.1 and counts.max() > 150
    if distribution == "log_uniform":  # P(count > 200) = ln(401/200) / ln(401/5) = 0.16
        assert np.mean(counts > 200) > 0.05


def test_fixed_count_range_gives_exactly_that_count():
    cfg = SyntheticCrowdConfig(min_count=0, max_count=0)
    assert crowd_points(cfg, 0, 0).shape == (0, 2)
    assert render_crowd(cfg, 0, 0).shape == (256, 256, 3)
    assert len(crowd_points(SyntheticCrowdConfig(min_count=57, max_count=57), 0, 3)) == 57


def test_heads_overlap_only_partly():
    layout = crowd_layout(SyntheticCrowdConfig(min_count=300, max_count=300), 0, 0)
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(layout.points).query(layout.points, k=2)
    # No two heads stacked on the same spot; most keep the separation target.
    assert dist[:, 1].min() > 0.5
    assert np.median(dist[:, 1] / layout.head_radii) > 1.2


# --------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"height": 8}, "height"),
        ({"width": 100.0}, "width"),
        ({"min_count": 50, "max_count": 10}, "min_count"),
        ({"min_count": -1}, "min_count"),
        ({"count_distribution": "normal"}, "count_distribution"),
        ({"pareto_shape": 0.0}, "pareto_shape"),
        ({"min_groups": 0}, "min_groups"),
        ({"min_groups": 4, "max_groups": 2}, "min_groups"),
        ({"scatter_fraction": 1.5}, "scatter_fraction"),
        ({"perspective": 1.0}, "perspective"),
        ({"head_radius": 2.0, "perspective": 0.8}, "head_radius \\* \\(1 - perspective\\)"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"min_distractors": 5, "max_distractors": 1}, "min_distractors"),
        ({"texture_contrast": -0.1}, "texture_contrast"),
        ({"draw_bodies": "yes"}, "draw_bodies"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        SyntheticCrowdConfig(**overrides)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.height = 10


# --------------------------------------------------------------------------- dataset items


def test_read_synthetic_items_ids_sizes_and_points():
    items = read_synthetic(split="train", n_train=5, n_test=2, seed=4, height=64, width=80, max_count=60)
    assert [it.id for it in items] == [f"train/{i:06d}" for i in range(5)]
    cfg = SyntheticCrowdConfig(height=64, width=80, max_count=60)
    for position, item in enumerate(items):
        assert isinstance(item, Item) and item.image_path is None and item.size == (64, 80)
        np.testing.assert_array_equal(item.points, crowd_points(cfg, 4, position))
        assert item.outside_points.shape == (0, 2) and item.count == len(item.points)
        assert item.load_image().tobytes() == render_crowd(cfg, 4, position).tobytes()
    test_items = read_synthetic(split="test", n_train=5, n_test=2, seed=4, height=64, width=80, max_count=60)
    assert [it.id for it in test_items] == ["test/000000", "test/000001"]
    np.testing.assert_array_equal(test_items[1].points, crowd_points(cfg, 4, TEST_INDEX_OFFSET + 1))


def test_train_and_test_are_disjoint_and_test_does_not_depend_on_n_train():
    train = read_synthetic(split="train", n_train=30, n_test=10)
    test_a = read_synthetic(split="test", n_train=30, n_test=10)
    test_b = read_synthetic(split="test", n_train=7, n_test=10)
    train_keys = {it.raw_points.tobytes() for it in train}
    assert not train_keys & {it.raw_points.tobytes() for it in test_a}
    for a, b in zip(test_a, test_b):
        np.testing.assert_array_equal(a.points, b.points)


def test_points_are_read_without_rendering(monkeypatch):
    def no_render(*args, **kwargs):
        raise AssertionError("points must not render the image")

    monkeypatch.setattr(synthetic, "render_layout", no_render)
    item = read_synthetic(n_train=1)[0]
    assert item.count >= DEFAULT.min_count and item.size == (256, 256)


def test_items_pickle_and_load_the_same_data():
    items = read_synthetic(split="test", n_test=3, seed=9, config=SyntheticCrowdConfig(max_count=80), width=96)
    clones = pickle.loads(pickle.dumps(items))
    for item, clone in zip(items, clones):
        assert clone.id == item.id and clone.size == (256, 96)
        np.testing.assert_array_equal(clone.points, item.points)
        assert clone.load_image().tobytes() == item.load_image().tobytes()


def test_read_synthetic_rejects_bad_arguments_by_name():
    with pytest.raises(DatasetError, match="split 'val'"):
        read_synthetic(split="val")
    with pytest.raises(DatasetError, match="n_train"):
        read_synthetic(n_train=-1)
    with pytest.raises(DatasetError, match="headradius"):
        read_synthetic(headradius=3.0)
    with pytest.raises(ValueError, match="max_count"):
        read_synthetic(min_count=10, max_count=5)
    with pytest.raises(DatasetError, match="config"):
        read_synthetic(config={"height": 64})


# --------------------------------------------------------------------------- learnability


def _learn_benchmark():
    """benchmarks/synthetic_learn.py as a module: its cell counts, data loading, network and
    training procedure are what these tests assert about (the benchmark measures them)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "synthetic_learn.py"
    spec = importlib.util.spec_from_file_location("synthetic_learn_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cell_counts_are_count_exact():
    pts = crowd_points(DEFAULT, 0, 3)
    assert _learn_benchmark().cell_counts(pts, 256, 256).sum() == len(pts)


@pytest.mark.slow
def test_tiny_cnn_learns_to_count_synthetic_crowds():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    size, n_train, n_test, epochs, batch = 128, 128, 48, 22, 16
    cfg = SyntheticCrowdConfig(height=size, width=size, min_count=5, max_count=120)

    bench = _learn_benchmark()
    x_train, y_train = bench.load_split(cfg, "train", n_train, n_test, seed=0)
    x_test, y_test = bench.load_split(cfg, "test", n_train, n_test, seed=0)

    # The same network and training procedure as benchmarks/synthetic_learn.py (which measures
    # it against baselines); this test asserts the claim.
    net, train_seconds = bench.train_counter(x_train, y_train, epochs=epochs, batch=batch, seed=0)
    with torch.no_grad():
        predicted = net(x_test).sum(dim=(1, 2, 3)).numpy()
    true_test = y_test.sum(dim=(1, 2, 3)).numpy()
    cnn_mae = np.abs(predicted - true_test).mean()
    mean_mae = np.abs(float(y_train.sum(dim=(1, 2, 3)).mean()) - true_test).mean()
    print(f"tiny CNN test MAE {cnn_mae:.2f} vs mean baseline {mean_mae:.2f} in {train_seconds:.1f} s")
    assert cnn_mae < 0.5 * mean_mae
