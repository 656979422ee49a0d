"""CSRNet, gradient reversal, latent MixUp, AL-AC losses and input normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import (
    CSRNet,
    DomainClassifier,
    GradientReversal,
    alignment_loss,
    density_regression_loss,
    domain_classification_loss,
    gradient_reversal,
    latent_mixup,
    normalize_csrnet,
    normalize_cssccnn,
    output_size,
    sample_mixup_weights,
    scaled_channels,
)

NARROW = 0.125  # 8-channel first conv: fast on CPU, same code as the paper's network


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ CSRNet shapes
def test_paper_network_has_the_published_parameter_count():
    model = CSRNet()
    assert model.width == 1.0
    assert sum(p.numel() for p in model.parameters()) == 16_263_489
    assert model.feature_channels == 64


@pytest.mark.parametrize(
    "height, width, expected",
    [(1, 1, (1, 1)), (7, 9, (1, 2)), (8, 8, (1, 1)), (37, 53, (5, 7)), (64, 33, (8, 5)), (17, 100, (3, 13))],
)
def test_density_is_ceil_of_input_over_8_for_any_size(height, width, expected):
    model = CSRNet(width=NARROW).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width, generator=seeded(1)))
    assert out.shape == (2, 1, *expected)
    assert output_size(height, width) == expected


def test_odd_sizes_equal_explicit_zero_padding_and_leave_input_untouched():
    model = CSRNet(width=NARROW).eval()
    x = torch.randn(1, 3, 37, 53, generator=seeded(2))
    before = x.clone()
    padded = torch.zeros(1, 3, 40, 56)
    padded[:, :, :37, :53] = x
    with torch.no_grad():
        assert torch.equal(model(x), model(padded))
    assert torch.equal(x, before)


def test_forward_is_density_head_of_features():
    model = CSRNet(width=NARROW).eval()
    x = torch.randn(2, 3, 24, 40, generator=seeded(3))
    with torch.no_grad():
        phi = model.features(x)
        assert phi.shape == (2, model.feature_channels, 3, 5)
        assert torch.equal(model(x), model.density_head(phi))
        assert (phi >= 0).all()  # phi is taken after the back end's last ReLU


def test_width_scales_every_layer_and_rejects_bad_values():
    model = CSRNet(width=0.25)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128, 64, 32, 16, 1]
    assert scaled_channels(64, 0.001) == 1
    assert scaled_channels(512, 1.0) == 512
    for bad in (0, -1.0, float("nan"), float("inf"), "wide"):
        with pytest.raises(ValueError, match="width"):
            CSRNet(width=bad)


def test_initialisation_is_seeded():
    a, b, c = CSRNet(NARROW, seeded(5)), CSRNet(NARROW, seeded(5)), CSRNet(NARROW, seeded(6))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["frontend.0.weight"], sc["frontend.0.weight"])
    default_1, default_2 = CSRNet(NARROW).state_dict(), CSRNet(NARROW).state_dict()
    assert all(torch.equal(default_1[k], default_2[k]) for k in default_1)
    assert float(sa["frontend.0.weight"].std()) == pytest.approx(0.01, rel=0.3)
    assert float(sa["backend.0.bias"].abs().sum()) == 0.0


def test_bad_inputs_raise_value_error_naming_the_problem():
    model = CSRNet(width=NARROW)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match="floating"):
        model(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(3, 16, 16))


# ---------------------------------------------------------------------------- gradient reversal
def test_grl_forward_is_identity_and_backward_flips_sign_exactly():
    x = torch.randn(3, 5, generator=seeded(7), requires_grad=True)
    w = torch.randn(3, 5, generator=seeded(8))
    y = gradient_reversal(x)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.equal(x.grad, -w)

    x.grad = None
    (GradientReversal(0.5)(x) * w).sum().backward()
    assert torch.equal(x.grad, 0.5 * w)


def test_domain_classifier_reverses_gradient_into_phi_only():
    phi = torch.rand(2, 8, 3, 4, generator=seeded(9))
    reversed_clf = DomainClassifier(8, grl_multiplier=-1.0, generator=seeded(10))
    plain_clf = DomainClassifier(8, grl_multiplier=1.0, generator=seeded(10))
    labels = torch.tensor([0.0, 1.0])
    grads = []
    for clf in (reversed_clf, plain_clf):
        p = phi.clone().requires_grad_(True)
        logits = clf(p)
        assert logits.shape == (2,)
        F.binary_cross_entropy_with_logits(logits, labels).backward()
        grads.append((p.grad, clf.conv.weight.grad))
    assert torch.equal(grads[0][0], -grads[1][0])  # into phi: sign flipped
    assert torch.equal(grads[0][1], grads[1][1])  # the classifier itself learns normally
    assert grads[0][0].abs().sum() > 0
    with torch.no_grad():  # forward: 1x1 conv then global average pool
        expected = (plain_clf.conv.weight.view(1, 8, 1, 1) * phi).sum(1).mean((1, 2)) + plain_clf.conv.bias
        assert torch.allclose(reversed_clf(phi), expected, atol=1e-6)


# ------------------------------------------------------------------------------------- MixUp
def test_mixup_weights_are_max_of_beta_draw_and_its_complement():
    weights = sample_mixup_weights(np.random.default_rng(123), count=6, alpha=0.5)
    t = np.random.default_rng(123).beta(0.5, 0.5, size=6)
    assert torch.equal(weights, torch.from_numpy(np.maximum(t, 1 - t)).float())
    assert bool(((weights >= 0.5) & (weights <= 1.0)).all())


def test_mixup_weights_are_deterministic_per_generator_and_have_the_arcsine_mean():
    a = sample_mixup_weights(seeded(4), count=5)
    b = sample_mixup_weights(seeded(4), count=5)
    assert torch.equal(a, b)
    g = seeded(4)
    first, second = sample_mixup_weights(g, count=5), sample_mixup_weights(g, count=5)
    assert not torch.equal(first, second)
    # E[max(t, 1 - t)] for t ~ Beta(1/2, 1/2) is 1/2 + 1/pi.
    many = sample_mixup_weights(np.random.default_rng(0), count=40_000)
    assert float(many.mean()) == pytest.approx(0.5 + 1 / math.pi, abs=0.005)
    with pytest.raises(ValueError, match="alpha"):
        sample_mixup_weights(seeded(0), alpha=0.0)
    with pytest.raises(ValueError, match="generator"):
        sample_mixup_weights(0)


def test_latent_mixup_math_and_gradients():
    phi_a = torch.full((2, 3, 2, 2), 2.0, requires_grad=True)
    phi_b = torch.full((2, 3, 2, 2), 4.0, requires_grad=True)
    mix = latent_mixup(phi_a, phi_b, torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]), torch.tensor([0.75, 0.5]))
    assert torch.equal(mix.features[0], torch.full((3, 2, 2), 2.5))
    assert torch.equal(mix.features[1], torch.full((3, 2, 2), 3.0))
    assert torch.equal(mix.labels, torch.tensor([0.25, 1.0]))  # same labels stay the same
    mix.features.sum().backward()
    assert torch.equal(phi_a.grad[0], torch.full((3, 2, 2), 0.75))
    assert torch.equal(phi_b.grad[0], torch.full((3, 2, 2), 0.25))
    with pytest.raises(ValueError, match="weights"):
        latent_mixup(phi_a, phi_b, torch.zeros(2), torch.zeros(2), 1.5)
    with pytest.raises(ValueError, match="features_a"):
        latent_mixup(phi_a, phi_b[:1], torch.zeros(2), torch.zeros(2), 0.5)


# ------------------------------------------------------------------------------------- losses
def test_density_regression_loss_is_summed_squared_error_over_2k():
    pred = torch.zeros(2, 1, 2, 2)
    target = torch.ones(2, 1, 2, 2)
    target[1] = 3.0
    # all labeled: (4 * 1 + 4 * 9) / (2 * 2) = 10
    assert float(density_regression_loss(pred, target)) == 10.0
    # only the first labeled: 4 / 2 = 2; the second row's target is ignored
    assert float(density_regression_loss(pred, target, torch.tensor([True, False]))) == 2.0
    p = torch.zeros(2, 1, 2, 2, requires_grad=True)
    none = density_regression_loss(p, target, torch.tensor([False, False]))
    none.backward()
    assert float(none.detach()) == 0.0 and float(p.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="same"):
        density_regression_loss(pred, target[:, :, :1])


def test_density_regression_loss_ignores_any_value_in_unlabeled_rows():
    pred = torch.rand(3, 1, 4, 4, generator=seeded(5)).requires_grad_()
    target = torch.rand(3, 1, 4, 4, generator=seeded(6))
    target[1] = float("nan")  # an unlabeled row may hold anything, NaN included
    labeled = torch.tensor([True, False, True])
    loss = density_regression_loss(pred, target, labeled)
    expected = (pred[labeled] - target[labeled]).pow(2).sum() / 4.0
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and float(pred.grad[1].abs().sum()) == 0.0
    assert float(pred.grad[0].abs().sum()) > 0.0


def test_domain_loss_is_bce_with_logits():
    assert float(domain_classification_loss(torch.zeros(3), torch.tensor([0.0, 1.0, 0.5]))) == pytest.approx(math.log(2))
    logits, labels = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0])
    expected = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 - 1 / (1 + math.exp(1)))) / 2
    assert float(domain_classification_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)


def _alignment_setup():
    model = CSRNet(width=NARROW, generator=seeded(11))
    clf = DomainClassifier(model.feature_channels, generator=seeded(12))
    images = torch.randn(2, 3, 32, 24, generator=seeded(13))
    targets = torch.rand(2, 1, 4, 3, generator=seeded(14))
    return model, clf, images, targets


def test_alignment_loss_combines_terms_with_beta_3_and_is_seeded():
    model, clf, images, targets = _alignment_setup()
    labeled = torch.tensor([True, False])
    out = alignment_loss(model, clf, images, targets, labeled, np.random.default_rng(0))
    again = alignment_loss(model, clf, images, targets, labeled, np.random.default_rng(0))
    assert torch.equal(out.total, again.total) and torch.equal(out.mixup_weights, again.mixup_weights)
    total, regression, domain = (float(t.detach()) for t in (out.total, out.regression, out.domain))
    assert total == pytest.approx(regression + 3.0 * domain, rel=1e-6)
    assert domain == pytest.approx(float((out.domain_individual + out.domain_mixed).detach()), rel=1e-6)

    with torch.no_grad():  # recompute each part by hand
        phi = model.features(images)
        reg = ((model.density_head(phi)[0] - targets[0]) ** 2).sum() / 2
        logits = clf(phi)
        y = torch.tensor([0.0, 1.0])
        individual = F.binary_cross_entropy_with_logits(logits[:1], y[:1]) + F.binary_cross_entropy_with_logits(logits[1:], y[1:])
        lam = float(out.mixup_weights[0])
        mixed = F.binary_cross_entropy_with_logits(clf(lam * phi[:1] + (1 - lam) * phi[1:]), torch.tensor([lam * 0 + (1 - lam) * 1]))
    assert regression == pytest.approx(float(reg), rel=1e-5)
    assert float(out.domain_individual.detach()) == pytest.approx(float(individual), rel=1e-5)
    assert float(out.domain_mixed.detach()) == pytest.approx(float(mixed), rel=1e-5)

    no_mix = alignment_loss(model, clf, images, targets, labeled, None, use_mixup=False)
    assert float(no_mix.domain_mixed.detach()) == 0.0
    with pytest.raises(ValueError, match="even"):
        alignment_loss(model, clf, images[:1], targets[:1], labeled[:1], np.random.default_rng(0))


def test_alignment_gradient_into_the_backbone_is_reversed():
    """The domain term's gradient on the CSRNet weights flips sign with the GRL multiplier,
    while the classifier's own gradient does not."""
    model, _, images, targets = _alignment_setup()
    labeled = torch.tensor([True, False])
    grads = {}
    for multiplier in (-1.0, 1.0):
        clf = DomainClassifier(model.feature_channels, grl_multiplier=multiplier, generator=seeded(12))
        model.zero_grad()
        out = alignment_loss(model, clf, images, targets, labeled, np.random.default_rng(3))
        out.domain.backward()
        grads[multiplier] = (model.backend[0].weight.grad.clone(), clf.conv.weight.grad.clone())
    assert torch.allclose(grads[-1.0][0], -grads[1.0][0], rtol=1e-5, atol=1e-12)
    assert grads[-1.0][0].abs().sum() > 0
    assert torch.allclose(grads[-1.0][1], grads[1.0][1], rtol=1e-5, atol=1e-12)


# ------------------------------------------------------------------------------ normalisation
def test_csrnet_normalisation_values_and_layouts():
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[0, 0] = (255, 0, 128)
    before = image.copy()
    out = normalize_csrnet(image)
    assert out.shape == (1, 3, 2, 3) and out.dtype == torch.float32
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    assert out[0, :, 0, 0].tolist() == pytest.approx(expected, rel=1e-6)
    assert np.array_equal(image, before)
    as_float = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255
    assert torch.allclose(normalize_csrnet(as_float), out, atol=1e-6)


def test_cssccnn_normalisation_subtracts_the_mean_on_0_255():
    image = np.full((1, 1, 3), (104, 117, 200), dtype=np.uint8)
    out = normalize_cssccnn(image)
    assert out[0, :, 0, 0].tolist() == pytest.approx([104 - 104.008, 117 - 116.669, 200 - 122.675], abs=1e-4)
    from_float = normalize_cssccnn(torch.from_numpy(image).float() / 255.0)
    assert torch.allclose(from_float, out, atol=1e-4)


def test_normalisation_never_works_in_place_or_aliases_the_input():
    batch = torch.rand(2, 3, 4, 5, generator=seeded(15))
    before = batch.clone()
    for fn in (normalize_csrnet, normalize_cssccnn):
        out = fn(batch)
        assert out is not batch and out.data_ptr() != batch.data_ptr()
        out.add_(1.0)
        assert torch.equal(batch, before)
    readonly = np.zeros((4, 4, 3), dtype=np.uint8)
    readonly.flags.writeable = False
    assert normalize_csrnet(readonly).shape == (1, 3, 4, 4)


def test_normalisation_rejects_bad_inputs():
    with pytest.raises(ValueError, match="0..1"):
        normalize_csrnet(torch.full((1, 3, 2, 2), 200.0))
    with pytest.raises(ValueError, match="shape"):
        normalize_csrnet(np.zeros((3, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        normalize_cssccnn(np.zeros((4, 4, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="numpy"):
        normalize_cssccnn([[1, 2, 3]])
