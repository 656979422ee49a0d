"""The CSS-CCNN networks: shapes, heads, and freezing the feature extractor for stage 2."""

from __future__ import annotations

import pytest
import torch

from models import CSSCCNN, FENOutput

NARROW = 0.125


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_paper_network_layers():
    model = CSSCCNN()
    convs = [m for m in model.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256]
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.features.modules()) == 7
    head = [m for m in model.density_head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in head] == [(384, 128), (128, 64), (64, 1)]
    assert model.rotation_head[-1].out_features == 4


@pytest.mark.parametrize("height, width, expected", [(224, 224, (28, 28)), (37, 53, (5, 7)), (1, 9, (1, 2)), (64, 100, (8, 13))])
def test_density_shape_is_ceil_over_8_and_non_negative(height, width, expected):
    model = CSSCCNN(width=NARROW, generator=seeded(1)).eval()
    with torch.no_grad():
        density = model(torch.randn(2, 3, height, width, generator=seeded(2)) * 50)
    assert density.shape == (2, 1, *expected)
    assert (density >= 0).all()


def test_skip_connection_uses_pooled_block2_and_block3():
    model = CSSCCNN(width=NARROW, generator=seeded(1)).eval()
    x = torch.randn(1, 3, 40, 24, generator=seeded(3)) * 50
    with torch.no_grad():
        fen = model.extract(x)
        assert isinstance(fen, FENOutput)
        assert fen.block2_pooled.shape == (1, 16, 10, 6) and fen.block3.shape == (1, 32, 10, 6)
        assert torch.equal(model(x), model.density_head(torch.cat([fen.block2_pooled, fen.block3], 1)))
        # changing the block-2 features alone changes the head's output (before its final
        # ReLU, which is all zeros at initialisation): the skip is really used
        pre_relu = model.density_head[:-1]
        full = pre_relu(torch.cat([fen.block2_pooled, fen.block3], 1))
        no_block2 = pre_relu(torch.cat([torch.zeros_like(fen.block2_pooled), fen.block3], 1))
        assert not torch.allclose(full, no_block2)


def test_rotation_head_gives_four_logits():
    model = CSSCCNN(width=NARROW, generator=seeded(1))
    logits = model.rotation_logits(torch.randn(3, 3, 112, 112, generator=seeded(4)))
    assert logits.shape == (3, 4)
    logits.sum().backward()
    assert model.features.block1[0].weight.grad is not None


def _stage2_step(model: CSSCCNN) -> None:
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    x = torch.randn(4, 3, 32, 32, generator=seeded(5)) * 60 + 10
    model.train()
    loss = (model(x).sum() - 100.0) ** 2
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_frozen_extractor_weights_and_batchnorm_statistics_do_not_change():
    model = CSSCCNN(width=NARROW, generator=seeded(6)).freeze_features()
    assert model.features_frozen
    assert not any(p.requires_grad for p in model.features.parameters())
    features_before, head_before = _snapshot(model.features), _snapshot(model.density_head)
    _stage2_step(model)  # calls model.train() first
    assert not model.features.training and all(not m.training for m in model.features.modules())
    assert model.density_head.training
    features_after, head_after = model.features.state_dict(), model.density_head.state_dict()
    for name, value in features_before.items():  # conv weights, BN affine, running mean/var, counters
        assert torch.equal(value, features_after[name]), name
    assert any(not torch.equal(head_before[k], head_after[k]) for k in head_before)


def test_unfrozen_extractor_does_change_so_the_freeze_test_can_fail():
    model = CSSCCNN(width=NARROW, generator=seeded(6))
    before = _snapshot(model.features)
    _stage2_step(model)
    after = model.features.state_dict()
    assert not torch.equal(before["block1.1.running_mean"], after["block1.1.running_mean"])
    assert not torch.equal(before["block2.0.weight"], after["block2.0.weight"])

    model.freeze_features().unfreeze_features()
    assert not model.features_frozen and all(p.requires_grad for p in model.features.parameters())
    assert model.features.training == model.training


def test_initialisation_is_seeded_and_follows_the_reference():
    a, b = CSSCCNN(NARROW, seeded(7)).state_dict(), CSSCCNN(NARROW, seeded(7)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert float(a["density_head.0.weight"].std()) == pytest.approx(0.01, rel=0.2)
    # Kaiming normal, fan-in, ReLU gain: std = sqrt(2 / (in_channels * 9))
    w = a["features.block3.3.weight"]
    assert float(w.std()) == pytest.approx((2 / (w.shape[1] * 9)) ** 0.5, rel=0.2)
    with pytest.raises(ValueError, match="width"):
        CSSCCNN(width=0)
