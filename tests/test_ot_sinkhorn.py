"""Sinkhorn loss: reference semantics, backend agreement, gradients, bounded memory."""

import math

import numpy as np
import pytest
import torch

from ot import (
    PowerLawPriorConfig,
    SinkhornConfig,
    build_prior,
    reference_sinkhorn_potentials,
    sinkhorn_loss,
    squared_difference_cost,
    transport_plan,
)

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# A converged reference loop for the small prior-like problems below (they stop after a few
# hundred to a few thousand iterations; the defaults stop at 1000, often unconverged).
CONVERGED = dict(max_iterations=20_000, tolerance=1e-9)
# Nearly one-to-one plans (well-spaced points) converge slowly; 10,000 iterations at
# epsilon 1 get within 0.3 % of exact 1-D optimal transport.
NEAR_PERMUTATION = dict(epsilon=1.0, max_iterations=10_000, tolerance=0.0)
# Backends configured alike: same epsilon and cost, entropic objective, no debiasing,
# geomloss annealing slowly (scaling 0.99). Measured relative gap 0.1-0.4 %; allowed 1 %.
BACKEND_AGREEMENT_RTOL = 0.01


def _prior_like(num_samples: int, seed: int, cap: float = 8.0) -> torch.Tensor:
    prior = build_prior(PowerLawPriorConfig(3000, 482))
    values = prior.sample(num_samples, np.random.default_rng(seed))
    return torch.from_numpy(np.minimum(values, cap))


def _literal_reference_loop(x, y, epsilon, iterations):
    """The reference's update rule written out as in its code (without its 1e-8 in log a)."""
    a = torch.full((x.numel(),), 1.0 / x.numel(), dtype=F64)
    b = torch.full((y.numel(),), 1.0 / y.numel(), dtype=F64)
    u, v = torch.zeros_like(a), torch.zeros_like(b)
    cost = (x[:, None] - y[None, :]) ** 2
    for _ in range(iterations):
        kernel = (-cost + u[:, None] + v[None, :]) / epsilon
        u = epsilon * (torch.log(a) - torch.logsumexp(kernel, dim=1)) + u
        kernel = (-cost + u[:, None] + v[None, :]) / epsilon
        v = epsilon * (torch.log(b) - torch.logsumexp(kernel.t(), dim=1)) + v
    plan = torch.exp((-cost + u[:, None] + v[None, :]) / epsilon)
    return u, v, (plan * cost).sum()


def test_hand_made_single_prediction():
    # One prediction at 0 against samples {1, 3}: the plan must be (1/2, 1/2).
    x = torch.tensor([0.0], dtype=F64, requires_grad=True)
    y = torch.tensor([1.0, 3.0], dtype=F64)
    for config in (SinkhornConfig(), SinkhornConfig(objective="entropic"),
                   SinkhornConfig(backend="geomloss")):
        loss = sinkhorn_loss(x, y, config)
        loss.backward()
        assert float(loss.detach()) == pytest.approx(5.0, abs=1e-9)  # (1 + 9) / 2
        assert float(x.grad) == pytest.approx(-4.0, abs=1e-9)  # 2 (0 - mean(y))
        x.grad = None


def test_reference_loop_matches_a_literal_transcription():
    x, y = _prior_like(30, 1) * 1.2, _prior_like(45, 2)
    for iterations in (1, 7, 60):
        u, v, cost = _literal_reference_loop(x, y, 0.1, iterations)
        ours = reference_sinkhorn_potentials(x, y, 0.1, max_iterations=iterations, tolerance=0)
        assert ours.iterations == iterations and not ours.converged
        torch.testing.assert_close(ours.row, u, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(ours.column, v, rtol=1e-9, atol=1e-9)
        config = SinkhornConfig(max_iterations=iterations, tolerance=0.0)
        assert float(sinkhorn_loss(x, y, config)) == pytest.approx(float(cost), rel=1e-9)


def test_reference_stopping_rule():
    x, y = _prior_like(30, 1), _prior_like(45, 2)
    assert reference_sinkhorn_potentials(x, y, 0.1, 1000, tolerance=1e9).iterations == 1
    loose = reference_sinkhorn_potentials(x, y, 1.0, 100_000, tolerance=0.1)
    tight = reference_sinkhorn_potentials(x, y, 1.0, 100_000, tolerance=1e-8)
    assert loose.converged and tight.converged and loose.iterations < tight.iterations
    plan = transport_plan(x, y, tight, 1.0)
    # Column marginals are exact after each iteration; rows converge.
    torch.testing.assert_close(plan.sum(0), torch.full((45,), 1 / 45, dtype=F64))
    torch.testing.assert_close(plan.sum(1), torch.full((30,), 1 / 30, dtype=F64), atol=1e-8,
                               rtol=0)


def test_identical_samples_cost_almost_nothing_and_shifts_cost_more():
    y = _prior_like(60, 3)
    config = SinkhornConfig()
    same = float(sinkhorn_loss(y.clone(), y, config))
    assert 0.0 <= same < 0.05
    losses = [float(sinkhorn_loss(y + shift, y, config)) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert losses == sorted(losses) and losses[-1] > 1.0
    # Converged, the plan between well-spaced points and their shifted copy moves every point
    # by the shift (optimal in 1-D): cost = shift^2 (entropic blur adds ~2 %).
    spaced = torch.arange(30, dtype=F64) * 3.0
    value = float(sinkhorn_loss(spaced + 1.0, spaced, SinkhornConfig(**NEAR_PERMUTATION)))
    assert value == pytest.approx(1.0, abs=0.03)


def test_converged_transport_cost_approaches_exact_1d_optimal_transport():
    generator = torch.Generator().manual_seed(0)
    x = 3.0 * torch.arange(20, dtype=F64)[torch.randperm(20, generator=generator)]
    y = 3.0 * (torch.arange(20, dtype=F64) * 1.1 + 0.37)
    exact = float(((x.sort().values - y.sort().values) ** 2).mean())  # sorted matching in 1-D
    value = float(sinkhorn_loss(x, y, SinkhornConfig(**NEAR_PERMUTATION)))
    assert value == pytest.approx(exact, rel=5e-3)


@pytest.mark.parametrize("epsilon", [0.1, 1.0])
def test_backends_agree_when_configured_alike(epsilon):
    x, y = _prior_like(40, 4) * 1.3, _prior_like(70, 5)
    reference = sinkhorn_loss(x, y, SinkhornConfig(epsilon=epsilon, objective="entropic",
                                                   **CONVERGED))
    geomloss = sinkhorn_loss(x, y, SinkhornConfig(backend="geomloss", epsilon=epsilon,
                                                  scaling=0.99))
    assert float(geomloss) == pytest.approx(float(reference), rel=BACKEND_AGREEMENT_RTOL)
    # The objectives differ by eps * KL(P | a x b) in [0, eps * log(min(N, M))].
    cost = float(sinkhorn_loss(x, y, SinkhornConfig(epsilon=epsilon, **CONVERGED)))
    assert 0.0 <= float(reference) - cost <= epsilon * math.log(40) + 1e-9


@pytest.mark.parametrize("config", [
    SinkhornConfig(), SinkhornConfig(objective="entropic"), SinkhornConfig(backend="geomloss"),
    SinkhornConfig(backend="geomloss", debias=True)], ids=lambda c: f"{c.backend}-{c.objective}")
def test_gradient_reaches_predictions_and_one_step_lowers_the_loss(config):
    y = _prior_like(80, 6)
    x = (_prior_like(40, 7) * 1.5 + 0.5).requires_grad_()  # predictions too high
    prior = y.clone().requires_grad_()
    loss = sinkhorn_loss(x, prior, config)
    loss.backward()
    assert prior.grad is None  # no gradient flows to the prior samples
    assert x.grad is not None and float(x.grad.sum()) > 0  # pushes predictions down
    with torch.no_grad():
        stepped = x - 0.2 * x.grad / x.grad.abs().max()
    assert float(sinkhorn_loss(stepped, y, config)) < float(loss.detach())


def test_reference_gradient_is_the_entropic_cost_derivative():
    # Envelope theorem: with the plan held fixed the gradient is d OT_eps / dx at convergence.
    x, y = _prior_like(12, 8) * 1.4, _prior_like(17, 9)
    config = SinkhornConfig(epsilon=1.0, objective="entropic", **CONVERGED)
    leaf = x.clone().requires_grad_()
    sinkhorn_loss(leaf, y, config).backward()
    step = 1e-4
    for index in (0, 5, 8, 11):
        up, down = x.clone(), x.clone()
        up[index] += step
        down[index] -= step
        numeric = (float(sinkhorn_loss(up, y, config))
                   - float(sinkhorn_loss(down, y, config))) / (2 * step)
        assert float(leaf.grad[index]) == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_geomloss_gradient_approaches_the_converged_gradient():
    # geomloss stops after annealing: its gradient is 26 % (of the largest component) off at
    # scaling 0.5 and 3.4 % off at 0.99 on this problem; 5 % allowed at 0.99.
    x, y = _prior_like(12, 8) * 1.4, _prior_like(17, 9)
    gradients = []
    for config in (SinkhornConfig(epsilon=1.0, objective="entropic", **CONVERGED),
                   SinkhornConfig(backend="geomloss", epsilon=1.0, scaling=0.99),
                   SinkhornConfig(backend="geomloss", epsilon=1.0, scaling=0.5)):
        leaf = x.clone().requires_grad_()
        sinkhorn_loss(leaf, y, config).backward()
        gradients.append(leaf.grad)
    exact, close, coarse = gradients
    scale = float(exact.abs().max())
    assert float((close - exact).abs().max()) < 0.05 * scale
    assert float((coarse - exact).abs().max()) > float((close - exact).abs().max())


def _graph_size(tensor: torch.Tensor) -> int:
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


def test_autograd_graph_does_not_grow_with_iterations():
    x = (_prior_like(50, 10) + 0.3).requires_grad_()
    y = _prior_like(90, 11)
    few = sinkhorn_loss(x, y, SinkhornConfig(max_iterations=3, tolerance=0))
    many = sinkhorn_loss(x, y, SinkhornConfig(max_iterations=300, tolerance=0))
    assert _graph_size(few) == _graph_size(many) < 20


def test_dtype_device_and_shapes():
    x = _prior_like(36, 12).float().reshape(4, 9).requires_grad_()  # (B, cells) predictions
    y = _prior_like(50, 13).numpy()  # numpy prior samples are accepted
    loss = sinkhorn_loss(x, y)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    loss.backward()
    assert x.grad.shape == (4, 9)
    as_double = sinkhorn_loss(x.detach(), y, SinkhornConfig(compute_dtype=F64))
    assert as_double.dtype == torch.float32
    assert float(as_double) == pytest.approx(float(loss.detach()), rel=1e-4)


def test_geomloss_keeps_the_callers_autograd_mode():
    x, y = _prior_like(20, 14), _prior_like(30, 15)
    with torch.no_grad():
        sinkhorn_loss(x, y, SinkhornConfig(backend="geomloss"))
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()


def test_cost_matrix_is_squared_difference():
    cost = squared_difference_cost(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 5.0, -1.0]))
    torch.testing.assert_close(cost, torch.tensor([[1.0, 25.0, 1.0], [1.0, 9.0, 9.0]]))


@pytest.mark.parametrize("call", [
    lambda: SinkhornConfig(backend="pot"),
    lambda: SinkhornConfig(epsilon=0.0),
    lambda: SinkhornConfig(max_iterations=0),
    lambda: SinkhornConfig(max_iterations="1000"),
    lambda: reference_sinkhorn_potentials(torch.ones(2, 3), torch.ones(3)),
    lambda: reference_sinkhorn_potentials(torch.ones(3), torch.ones(3), epsilon=0.0),
    lambda: SinkhornConfig(tolerance=-1.0),
    lambda: SinkhornConfig(scaling=1.0),
    lambda: SinkhornConfig(objective="wasserstein"),
    lambda: SinkhornConfig(debias=True),  # reference backend cannot debias
    lambda: SinkhornConfig(backend="geomloss", objective="transport_cost"),
    lambda: SinkhornConfig(compute_dtype=torch.float16),
    lambda: sinkhorn_loss(torch.zeros(0), torch.ones(3)),
    lambda: sinkhorn_loss(torch.tensor([1.0, float("nan")]), torch.ones(3)),
    lambda: sinkhorn_loss(torch.ones(3), torch.tensor([float("inf")])),
    lambda: sinkhorn_loss([1.0, 2.0], torch.ones(3)),
    lambda: sinkhorn_loss(torch.ones(3, dtype=torch.int64), torch.ones(3)),
    lambda: sinkhorn_loss(torch.ones(3), torch.ones(3), config={"epsilon": 0.1}),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_exact_backend_is_the_sorted_matching_w2_and_pulls_inflated_counts_down():
    """``backend="exact"``: the converged (epsilon -> 0) squared W2 of two 1-D samples. For equal
    sizes it is the mean squared difference of the sorted values; for unequal sizes it equals the
    equal-size value of the samples repeated to a common length. Its gradient shrinks predictions
    that are too large (the reference loop at epsilon 0.1 / 100 iterations can push them up)."""
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.gamma(2.0, 2.0, 64), dtype=torch.float64, requires_grad=True)
    y = torch.tensor(rng.gamma(2.0, 2.0, 64), dtype=torch.float64)
    exact = SinkhornConfig(backend="exact")
    expected = ((torch.sort(x.detach()).values - torch.sort(y).values) ** 2).mean()
    assert float(sinkhorn_loss(x, y, exact)) == pytest.approx(float(expected), rel=1e-12)
    small, large = torch.tensor([1.0, 4.0, 2.0], dtype=torch.float64), torch.tensor([0.5, 3.0], dtype=torch.float64)
    repeated = ((torch.sort(small.repeat_interleave(2)).values - torch.sort(large.repeat_interleave(3)).values) ** 2).mean()
    assert float(sinkhorn_loss(small, large, exact)) == pytest.approx(float(repeated), rel=1e-12)
    inflated = (3.0 * x.detach()).requires_grad_(True)
    sinkhorn_loss(inflated, y, exact).backward()
    assert float(inflated.grad.sum()) > 0  # gradient descent lowers the inflated counts
