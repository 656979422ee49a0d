"""CSS-CCNN runner parts without training: crops, rotation views, held-out list, epoch selection
rules, config validation (errors before any work) and the stage plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.config import ConfigError, load_config
from orchestrator.cssccnn.crops import (
    CROP_GRID,
    centre_rotations,
    choose_holdout,
    cut,
    fit_min_side,
    plan_crops,
    rotation_view,
)
from orchestrator.cssccnn.epochs import CHOSEN, SPARSE, MovingAverageSelector, PlusPlusSelector
from orchestrator.cssccnn.losses import density_targets
from orchestrator.cssccnn.trial import CSSCCNNTrial, stage_plan
from orchestrator.data import DatasetError

DEMO = Path(__file__).resolve().parents[1] / "configs/cssccnn/demo.yaml"


def quiet(_msg):
    pass


def test_crop_plan_is_seeded_aligned_and_visits_every_image_once_per_pass():
    sizes = [(96, 128), (64, 64), (200, 72)]
    a = plan_crops(sizes, 64, 7, np.random.default_rng(5), rotations=True)
    b = plan_crops(sizes, 64, 7, np.random.default_rng(5), rotations=True)
    assert a == b and len(a) == 7
    assert sorted(s.image_index for s in a[:3]) == [0, 1, 2] and sorted(s.image_index for s in a[3:6]) == [0, 1, 2]
    for spec in a:
        h, w = sizes[spec.image_index]
        assert spec.top % CROP_GRID == 0 and spec.left % CROP_GRID == 0
        assert spec.top + 64 <= h and spec.left + 64 <= w and 0 <= spec.rotation < 4
    assert {s.top for s in plan_crops(sizes, 64, 300, np.random.default_rng(1))} > {0}
    assert all(s.rotation == 0 for s in plan_crops(sizes, 64, 30, np.random.default_rng(2)))


def test_cut_flips_and_rotation_views_turn_counter_clockwise():
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    from orchestrator.cssccnn.crops import CropSpec

    window = cut(image, CropSpec(0, 0, 0, flip=True), 8)
    np.testing.assert_array_equal(window, image[:, ::-1])
    view = rotation_view(image, 1)  # centre 4x4 at offset 2, one quarter turn counter-clockwise
    centre = image[2:6, 2:6]
    assert view.shape == (4, 4, 3)
    np.testing.assert_array_equal(view[0], centre[:, -1])  # top row of the turned view = right column
    np.testing.assert_array_equal(rotation_view(image, 0), centre)
    np.testing.assert_array_equal(rotation_view(image, 2), centre[::-1, ::-1])
    views, labels = centre_rotations(np.zeros((10, 12, 3), np.uint8), 4)
    assert views.shape == (4, 4, 4, 3) and list(labels) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="does not fit"):
        cut(image, CropSpec(0, 8, 0), 8)


def test_fit_min_side_upscales_only_small_images():
    small = np.zeros((50, 100, 3), np.uint8)
    assert fit_min_side(small, 64).shape == (64, 128, 3)
    big = np.zeros((70, 90, 3), np.uint8)
    assert fit_min_side(big, 64) is big


def test_density_targets_are_count_exact_block_sums():
    density = np.zeros((2, 16, 16), np.float32)
    density[0, 3, 3] = 1.0
    density[1, 9, 15] = 2.5
    target = density_targets(density)
    assert target.shape == (2, 1, 2, 2)
    assert float(target[0, 0, 0, 0]) == 1.0 and float(target[1, 0, 1, 1]) == 2.5
    assert torch.isclose(target.sum(), torch.tensor(3.5))


def test_holdout_is_deterministic_in_pool_order_and_depends_on_the_seed():
    ids = [f"img{i:02d}" for i in range(30)]
    first = choose_holdout(ids, 0.1, seed=3)
    assert first == choose_holdout(ids, 0.1, seed=3) and len(first) == 3
    assert first == [i for i in ids if i in first]
    assert choose_holdout(ids, 0.1, seed=4) != first
    assert len(choose_holdout(ids[:4], 0.1, seed=0)) == 1  # at least one, never all
    with pytest.raises(ValueError, match="fraction"):
        choose_holdout(ids, 1.0, seed=0)


def test_moving_average_selector_chooses_and_stops_by_patience():
    selector = MovingAverageSelector(window=2, patience=1, start=2)
    values = [5.0, 3.0, 1.0, 2.0, 4.0, 0.5]
    slots = [selector.update(epoch, v) for epoch, v in enumerate(values[:5], start=1)]
    # smoothed: -, 4.0, 2.0, 1.5, 3.0 -> best at epoch 4; epoch 5 is the first without gain
    assert slots == [[], [CHOSEN], [CHOSEN], [CHOSEN], []]
    assert selector.chosen_epoch == 4 and not selector.stopped
    selector.update(6, values[5])  # smoothed 2.25: second epoch without gain > patience 1
    assert selector.stopped and selector.final_epoch == 4
    with pytest.raises(ValueError, match="not finite"):
        MovingAverageSelector(1, None, 1).update(1, float("nan"))


def test_plus_plus_selector_uses_the_weighted_criterion_and_falls_back_on_divergence():
    selector = PlusPlusSelector(window=1, patience=None, start=1, dense_weight=0.1, divergence=1.0)
    assert selector.update(1, 2.0, 10.0) == [SPARSE, CHOSEN]  # criterion 3.0
    assert selector.update(2, 2.5, 1.0) == [CHOSEN]  # criterion 2.6, sparse not better
    assert selector.update(3, 1.5, 30.0) == [SPARSE]  # criterion 4.5
    assert selector.final_epoch == 2 and selector.chosen_slot == CHOSEN
    selector.update(4, 2.6, 0.0)  # sparse 2.6 > 1.5 + 1.0: diverged
    assert selector.stopped and selector.diverged
    assert selector.final_epoch == 3 and selector.chosen_slot == SPARSE


def test_stage_plan_per_baseline():
    assert stage_plan("none") == [(1, "stage1"), (2, "stage2")]
    assert stage_plan("random") == [(1, "stage1"), (2, "random")]
    assert stage_plan("mean") == [(2, "mean")] and stage_plan("pprior") == [(2, "pprior")]
    assert stage_plan("self_supervised_labels") == [(1, "stage1"), (2, "self_supervised_labels")]
    assert stage_plan("fully_supervised") == [(2, "fully_supervised")]


@pytest.mark.parametrize("override, message", [
    ("cssccnn.baseline=oracle", r"unknown baseline 'oracle'"),
    ("cssccnn.crop=60", r"cssccnn.crop must be a multiple of 8"),
    ("cssccnn.crop=24", r"holding at least one cell"),
    ("cssccnn.holdout_fraction=0", r"holdout_fraction must lie in \(0, 1\)"),
    ("cssccnn.labeled_images=40", r"labeled_images \(40\) exceeds the 11 train images"),
    ("cssccnn.sinkhorn_backend=pot", r"backend must be one of"),
    ("cssccnn.prior_cdf=exact", r"prior_cdf must be one of"),
    ("cssccnn.edge_grayscale=bgr", r"cssccnn.edge_grayscale must be one of"),
    ("cssccnn.stage2_lr=0", r"cssccnn.stage2.lr must be > 0"),
    ("ray.train_workers=5", r"cannot feed 5 Ray Train workers"),
    ("model.weights=/no/such.pt", r"model.weights: file not found"),
])
def test_bad_settings_fail_before_any_work(tmp_path, override, message):
    config = load_config(DEMO, "smoke", [override, "cssccnn.plus_plus=false"])
    with pytest.raises(ConfigError, match=message):
        CSSCCNNTrial(config, tmp_path / "t", log=quiet)
    assert not (tmp_path / "t").exists()


def test_plus_plus_with_a_baseline_and_unknown_keys_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="plus_plus applies to CSS-CCNN itself"):
        CSSCCNNTrial(load_config(DEMO, "smoke", ["cssccnn.plus_plus=true", "cssccnn.baseline=mean"]),
                     tmp_path, log=quiet)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['cssccnn.stage3_epochs'\]"):
        load_config(DEMO, "smoke", ["cssccnn.stage3_epochs=1"])
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        CSSCCNNTrial(load_config(DEMO, "smoke", ["dataset.name=nope"]), tmp_path, log=quiet)
    with pytest.raises(ConfigError, match="method must be 'cssccnn'"):
        CSSCCNNTrial(load_config(DEMO, "smoke", ["method=alac"]), tmp_path, log=quiet)


def test_the_edge_grayscale_option_reaches_the_canny_input(monkeypatch):
    """``cssccnn.edge_grayscale`` is what the ++ split loss hands to ``ot.edges``: the reference's
    BGR2GRAY-on-RGB gives other pseudo counts than luminance on a coloured crop."""
    from types import SimpleNamespace

    import orchestrator.cssccnn.losses as losses

    rng = np.random.default_rng(0)
    crops = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    for _ in range(12):
        r, c = rng.integers(0, 56, size=2)
        crops[0, r:r + 8, c:c + 8, rng.choice([0, 2])] = 255  # red or blue squares
    ours, reference = losses.pseudo_cell_counts(crops, 8), losses.pseudo_cell_counts(crops, 8, "reference_bgr")
    assert not torch.equal(ours, reference)
    seen = []
    monkeypatch.setattr(losses, "edge_pseudo_counts", lambda images, config, cell_size: seen.append(config.grayscale)
                        or np.ones((len(images), 1), np.float32))
    monkeypatch.setattr(losses, "plus_plus_terms", lambda *args: (torch.zeros(()), None))
    for choice in ("reference_bgr", "luminance"):
        stage = SimpleNamespace(cell=8, sinkhorn=None, css=load_config(DEMO, "smoke", [f"cssccnn.edge_grayscale={choice}"]).cssccnn)
        losses.StageLosses._split_loss(stage, torch.zeros(1, 1), crops, torch.zeros(3))
    assert seen == ["reference_bgr", "luminance"]
