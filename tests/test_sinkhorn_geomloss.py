"""geomloss agrees or goes (issue 17): it does not agree with the reference objective at the
reference settings, so training rejects it; the library keeps it for experiments."""

from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.config import ConfigError, load_config
from orchestrator.cssccnn.trial import CSSCCNNTrial
from ot import PowerLawPriorConfig, SinkhornConfig, build_prior, sinkhorn_loss

DEMO = Path(__file__).resolve().parents[1] / "configs/cssccnn/demo.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _value_and_gradient(x, y, config):
    leaf = x.clone().requires_grad_()
    loss = sinkhorn_loss(leaf, y, config)
    loss.backward()
    return float(loss.detach()), leaf.grad


@pytest.mark.parametrize("scaling", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("debias", [False, True])
def test_geomloss_misses_the_reference_objective_by_far_more_than_one_percent(scaling, debias):
    """Heavy-tailed predictions vs prior draws at the reference settings (epsilon 0.1, <= 1000
    iterations, tolerance 0.1: the loop runs all 1000 iterations). Measured here: geomloss's value
    is 2.2-3.7x the reference's, its gradient 1.6-2.0x off in norm (cosine 0.51-0.64); at 288 x
    1568 (benchmarks) 20-390 % off in value, cosine 0.56-0.98. No scaling or debiasing gets within
    1 %: geomloss converges (by annealing) where the reference loop stops at its iteration limit."""
    prior = build_prior(PowerLawPriorConfig(c_fmax=3000, num_images=482))
    rng = np.random.default_rng(1)
    x = torch.from_numpy(prior.sample(60, rng) * 1.5 + 0.3)
    y = torch.from_numpy(prior.sample(300, rng))
    value, gradient = _value_and_gradient(x, y, SinkhornConfig())
    other, other_gradient = _value_and_gradient(x, y, SinkhornConfig(backend="geomloss", scaling=scaling,
                                                                     debias=debias))
    assert abs(other - value) > 1.0 * value
    assert float((other_gradient - gradient).norm()) > 1.0 * float(gradient.norm())


def test_training_configs_reject_geomloss_with_the_reason(tmp_path):
    config = load_config(DEMO, "smoke", ["cssccnn.sinkhorn_backend=geomloss", "cssccnn.plus_plus=false"])
    with pytest.raises(ConfigError, match=r"'geomloss' is not offered for training: .*reference objective"):
        CSSCCNNTrial(config, tmp_path / "t", log=lambda _message: None)
    assert not (tmp_path / "t").exists()
