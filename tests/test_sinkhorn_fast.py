"""The fast reference-mode Sinkhorn (ot.sinkhorn_fast) against the dense log-domain loop, the
oracle: same iterates, stopping iteration, values and gradients."""

import numpy as np
import pytest
import torch

import ot.sinkhorn_fast as fast
from ot import PowerLawPriorConfig, SinkhornConfig, build_prior, reference_sinkhorn_potentials, sinkhorn_loss
from ot.sinkhorn_fast import stabilized_sinkhorn_potentials

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _heavy_tailed(num_predictions: int, num_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions 1.5 x prior draws + 0.3 against prior draws (SHA prior, tails to ~100)."""
    prior = build_prior(PowerLawPriorConfig(c_fmax=3000, num_images=482))
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(prior.sample(num_predictions, rng) * 1.5 + 0.3)
    return x, torch.from_numpy(prior.sample(num_samples, rng))


def _random(num_predictions: int, num_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return (torch.from_numpy(rng.gamma(2.0, 1.5, num_predictions)),
            torch.from_numpy(rng.uniform(0.0, 6.0, num_samples)))


CASES = [_heavy_tailed(60, 300, 1), _heavy_tailed(40, 250, 5), _random(50, 120, 2)]


def _assert_same_potentials(ours, oracle):
    assert (ours.iterations, ours.converged) == (oracle.iterations, oracle.converged)
    torch.testing.assert_close(ours.row, oracle.row, rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(ours.column, oracle.column, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("iterations", [1, 2, 7, 150])
def test_iterates_equal_the_dense_loop(case, iterations):
    x, y = CASES[case]
    oracle = reference_sinkhorn_potentials(x, y, 0.1, iterations, tolerance=0.0)
    _assert_same_potentials(stabilized_sinkhorn_potentials(x, y, 0.1, iterations, 0.0), oracle)


@pytest.mark.parametrize("epsilon, tolerance", [(1.0, 0.1), (0.1, 1.0), (0.5, 1e-3), (0.1, 1e9)])
@pytest.mark.parametrize("check_every", [1, 5, None])
def test_stopping_iteration_is_the_dense_loops_whatever_the_check_interval(epsilon, tolerance, check_every):
    x, y = _random(30, 45, 3)
    oracle = reference_sinkhorn_potentials(x, y, epsilon, 20_000, tolerance)
    ours = stabilized_sinkhorn_potentials(x, y, epsilon, 20_000, tolerance, check_every=check_every)
    _assert_same_potentials(ours, oracle)
    assert oracle.converged and (tolerance < 1e9 or oracle.iterations == 1)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_values_and_gradients_equal_the_dense_loop_at_the_reference_settings(case):
    """The reference's settings (eps 0.1, <= 1000 iterations, tolerance 0.1): on the heavy-tailed
    inputs the loop runs all 1000 iterations without converging, as at training size; the
    gamma/uniform one stops at iteration 247."""
    x, y = CASES[case]
    assert reference_sinkhorn_potentials(x, y).converged == (case == 2)
    results = []
    for solver in ("fast", "dense"):
        for objective in ("transport_cost", "entropic"):
            leaf = x.clone().requires_grad_()
            loss = sinkhorn_loss(leaf, y, SinkhornConfig(solver=solver, objective=objective))
            loss.backward()
            results.append((float(loss.detach()), leaf.grad))
    for (value, gradient), (oracle_value, oracle_gradient) in zip(results[:2], results[2:]):
        assert value == pytest.approx(oracle_value, rel=1e-10)
        torch.testing.assert_close(gradient, oracle_gradient, rtol=1e-8, atol=1e-12)


def test_float32_inputs_get_the_float64_loops_value():
    # The dense loop in float32 rounds exponents of size ~1e4 (0.01 absolute) and is off by 1e-4
    # here; the fast solver keeps potentials in float64.
    x, y = CASES[0]
    oracle = float(sinkhorn_loss(x, y, SinkhornConfig(solver="dense")))
    ours = sinkhorn_loss(x.float(), y.float(), SinkhornConfig())
    assert ours.dtype == torch.float32
    assert float(ours) == pytest.approx(oracle, rel=1e-6)


def test_float32_matrices_agree_to_single_precision():
    x, y = CASES[0]
    oracle = reference_sinkhorn_potentials(x, y, 0.1, 300, 0.0)
    ours = stabilized_sinkhorn_potentials(x, y, 0.1, 300, 0.0, matrix_dtype=torch.float32)
    assert ours.iterations == 300
    torch.testing.assert_close(ours.row, oracle.row, rtol=0, atol=1e-4)


def test_heavy_tails_need_absorptions_and_the_first_step_runs_in_the_log_domain(monkeypatch):
    calls = {"absorb": 0, "log_domain": 0}
    absorb, log_domain = fast._absorb, fast._log_domain_iteration

    def counting_absorb(*args):
        calls["absorb"] += 1
        return absorb(*args)

    def counting_log_domain(*args):
        calls["log_domain"] += 1
        return log_domain(*args)

    monkeypatch.setattr(fast, "_absorb", counting_absorb)
    monkeypatch.setattr(fast, "_log_domain_iteration", counting_log_domain)
    x, y = CASES[0]
    stabilized_sinkhorn_potentials(x, y, 0.1, 1000, 0.0, matrix_dtype=torch.float32)
    assert calls["log_domain"] >= 1 and calls["absorb"] > 2  # float32 limits force absorptions


def test_a_window_is_read_once_and_iterations_that_fail_the_check_are_redone(monkeypatch):
    reads = []
    read = fast._read_window

    def counting_read(*args):
        window = read(*args)
        reads.append(window)
        return window

    monkeypatch.setattr(fast, "_read_window", counting_read)
    x, y = CASES[0]
    ours = stabilized_sinkhorn_potentials(x, y, 0.1, 321, 0.0, check_every=20, matrix_dtype=torch.float32)
    assert ours.iterations == 321
    assert any(not all(window.ok) for window in reads)  # some windows hit the limits ...
    accepted = sum(fast._verdict(window, 0.0)[0] for window in reads)
    assert accepted + 1 <= 321 <= accepted + len(reads) + 1  # ... and were redone, not kept


@pytest.mark.parametrize("call", [
    lambda: stabilized_sinkhorn_potentials(torch.ones(2, 3, dtype=F64), torch.ones(3, dtype=F64)),
    lambda: stabilized_sinkhorn_potentials(torch.ones(3), torch.ones(3), epsilon=0.0),
    lambda: stabilized_sinkhorn_potentials(torch.ones(3), torch.ones(3), check_every=0),
    lambda: stabilized_sinkhorn_potentials(torch.ones(3), torch.ones(3), matrix_dtype=torch.float16),
    lambda: SinkhornConfig(solver="sparse"),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
