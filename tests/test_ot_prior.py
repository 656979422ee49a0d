"""Power-law prior: CDFs, the reference's lambda and shift choice, the sampler, baselines."""

import math
import time

import mpmath
import numpy as np
import pytest
from scipy import integrate, special, stats

from ot import (
    PowerLawPrior,
    PowerLawPriorConfig,
    build_prior,
    choose_lambda,
    choose_shift_threshold,
    mean_count_predictions,
    power_law_cdf,
    power_law_pdf,
    power_law_tail_integral,
    prior_draw_predictions,
    prior_mean_image_count,
    redistribute_below_threshold,
    sample_truncated_power_law,
)

# KS tests: fixed seeds, so each is deterministic; a correct sampler passes at p > 0.01, the
# wrong-lambda control fails at p < 1e-6.
KS_MIN_P_VALUE = 0.01
KS_SAMPLES = 100_000


def _quad_tail(x, alpha, lam):
    value, _ = integrate.quad(lambda c: c ** -alpha * math.exp(-lam * c), x, math.inf,
                              epsabs=0, epsrel=1e-12, limit=200)
    return value


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
@pytest.mark.parametrize("lam,x", [(0.028, 1.0), (0.028, 46.875), (0.043, 9.07), (0.5, 3.0)])
def test_tail_integral_matches_numerical_integration(alpha, lam, x):
    assert float(power_law_tail_integral(x, alpha, lam)) == pytest.approx(
        _quad_tail(x, alpha, lam), rel=1e-9)


def test_tail_integral_is_e1_and_e2_for_alpha_1_and_2():
    z = np.array([1e-4, 0.028, 1.3, 20.0])
    np.testing.assert_allclose(power_law_tail_integral(z / 0.5, 1.0, 0.5), special.exp1(z),
                               rtol=1e-14)
    for value in z:  # T(1) with alpha = 2 is E2(lambda)
        assert float(power_law_tail_integral(1.0, 2.0, float(value))) == pytest.approx(
            special.expn(2, value), rel=1e-14)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_unnormalised_cdf_is_the_reference_formula(alpha):
    # Reference get_cdf / powerlaw _cdf_base_function: 1 - gammainc(1-alpha, lam x) / lam^(1-alpha)
    for lam, x in [(0.028, 46.875), (0.043, 62.5), (0.01, 1.21), (0.2, 3.0)]:
        reference = 1 - float(mpmath.gammainc(1 - alpha, lam * x)) / lam ** (1 - alpha)
        assert float(power_law_cdf(x, alpha, lam, "unnormalised")) == pytest.approx(
            reference, rel=1e-12, abs=1e-14)


def test_normalised_cdf_and_pdf_are_consistent():
    alpha, lam = 2.0, 0.028
    assert float(power_law_cdf(1.0, alpha, lam)) == 0.0
    assert float(power_law_cdf(0.5, alpha, lam)) == 0.0
    mass, _ = integrate.quad(lambda c: float(power_law_pdf(c, alpha, lam)), 1.0, 7.0)
    assert float(power_law_cdf(7.0, alpha, lam)) == pytest.approx(mass, rel=1e-10)


def test_reference_lambda_and_shift_for_shanghaitech_a_and_ucf_cc_50():
    # Hand-checked with a linear scan of the reference's grid (see test below for the scan).
    sha = build_prior(PowerLawPriorConfig(c_fmax=3000, num_images=482))
    assert (sha.lam, sha.shift_threshold, sha.cells_per_image) == (0.028, 1.21, 64)
    ucf = build_prior(PowerLawPriorConfig(c_fmax=4000, num_images=50, alpha=1.0))
    assert (ucf.lam, ucf.shift_threshold) == (0.043, 9.07)
    sha_normalised = build_prior(PowerLawPriorConfig(3000, 482, cdf_mode="normalised"))
    assert (sha_normalised.lam, sha_normalised.shift_threshold) == (0.03, 1.35)


CONFIGS = [(3000, 482, 2.0), (12000, 1535, 2.0), (8000, 4372, 2.0), (4000, 50, 1.0),
           (500, 10, 2.0)]


@pytest.mark.parametrize("cdf_mode", ["unnormalised", "normalised"])
@pytest.mark.parametrize("c_fmax,num_images,alpha", CONFIGS)
def test_chosen_lambda_meets_target_and_previous_grid_value_does_not(c_fmax, num_images,
                                                                      alpha, cdf_mode):
    c_max = c_fmax / 64
    lam = choose_lambda(c_max, num_images, alpha, cdf_mode)
    target = 1 - 1 / num_images
    assert float(power_law_cdf(c_max, alpha, lam, cdf_mode)) > target
    assert lam > 0.001
    previous = round(lam - 0.001, 12)
    assert float(power_law_cdf(c_max, alpha, previous, cdf_mode)) <= target


@pytest.mark.parametrize("cdf_mode", ["unnormalised", "normalised"])
@pytest.mark.parametrize("c_fmax,num_images,alpha", CONFIGS)
def test_lambda_bisection_equals_the_reference_linear_scan(c_fmax, num_images, alpha, cdf_mode):
    c_max = c_fmax / 64
    grid = np.arange(1, 1000) * 0.001
    tail_cmax = c_max ** (1 - alpha) * special.expn(int(alpha), grid * c_max)
    tail_one = special.expn(int(alpha), grid)
    cdf = 1 - tail_cmax if cdf_mode == "unnormalised" else 1 - tail_cmax / tail_one
    first = grid[np.argmax(cdf > 1 - 1 / num_images)]
    assert choose_lambda(c_max, num_images, alpha, cdf_mode) == pytest.approx(first, abs=1e-12)


@pytest.mark.parametrize("cdf_mode", ["unnormalised", "normalised"])
def test_shift_threshold_is_the_first_grid_value_over_the_level(cdf_mode):
    lam = choose_lambda(3000 / 64, 482, 2.0, cdf_mode)
    threshold = choose_shift_threshold(2.0, lam, cdf_mode)
    assert float(power_law_cdf(threshold, 2.0, lam, cdf_mode)) > 0.28
    assert float(power_law_cdf(round(threshold - 0.01, 10), 2.0, lam, cdf_mode)) <= 0.28


@pytest.mark.parametrize("alpha,lam", [(2.0, 0.028), (1.0, 0.043), (2.0, 0.5), (0.5, 0.01)])
def test_sampler_matches_the_analytic_cdf(alpha, lam):
    samples = sample_truncated_power_law(KS_SAMPLES, alpha, lam, np.random.default_rng(7))
    assert samples.shape == (KS_SAMPLES,) and samples.min() >= 1.0
    result = stats.kstest(samples, lambda x: power_law_cdf(x, alpha, lam))
    assert result.pvalue > KS_MIN_P_VALUE
    wrong = stats.kstest(samples, lambda x: power_law_cdf(x, alpha, 1.25 * lam))
    assert wrong.pvalue < 1e-6


@pytest.mark.parametrize("cdf_mode", ["unnormalised", "normalised"])
def test_shifted_prior_matches_its_cdf_and_mass_below_shift(cdf_mode):
    prior = build_prior(PowerLawPriorConfig(3000, 482, cdf_mode=cdf_mode))
    samples = prior.sample(KS_SAMPLES, np.random.default_rng(3))
    assert samples.min() >= 0.0
    assert stats.kstest(samples, prior.cdf).pvalue > KS_MIN_P_VALUE
    below = float(np.mean(samples <= prior.shift_threshold))
    assert below == pytest.approx(prior.mass_below_shift, abs=0.005)
    # The uniform part: samples below the shift are spread evenly over [0, threshold).
    small = samples[samples < prior.shift_threshold] / prior.shift_threshold
    assert stats.kstest(small, "uniform").pvalue > KS_MIN_P_VALUE
    if cdf_mode == "normalised":  # "roughly 30 %" of the mass (METHOD.md), here 28.4 %
        assert 0.27 < below < 0.31
    else:  # the reference's unnormalised CDF puts only 19 % there
        assert prior.mass_below_shift == pytest.approx(0.18960, abs=1e-4)


def test_sampler_is_seeded():
    prior = build_prior(PowerLawPriorConfig(3000, 482))
    first = prior.sample(1568, np.random.default_rng(11))
    again = prior.sample(1568, np.random.default_rng(11))
    other = prior.sample(1568, np.random.default_rng(12))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert prior.sample(0, np.random.default_rng(0)).shape == (0,)


def test_sampler_is_fast_enough_for_every_training_step():
    prior = build_prior(PowerLawPriorConfig(3000, 482))
    rng = np.random.default_rng(0)
    durations = []
    for _ in range(30):
        start = time.perf_counter()
        prior.sample(1568, rng)
        durations.append(time.perf_counter() - start)
    assert float(np.median(durations)) < 0.01  # ~0.06 ms on an idle core; loose for CI noise


def test_redistribution_leaves_input_alone_and_large_values_unchanged():
    samples = np.array([0.5, 1.0, 1.2, 1.21, 5.0, 40.0])
    shifted = redistribute_below_threshold(samples, 1.21, np.random.default_rng(0))
    np.testing.assert_array_equal(samples, [0.5, 1.0, 1.2, 1.21, 5.0, 40.0])
    np.testing.assert_array_equal(shifted[3:], [1.21, 5.0, 40.0])
    assert np.all((shifted[:3] >= 0) & (shifted[:3] < 1.21))


@pytest.mark.parametrize("alpha,c_fmax,num_images", [(2.0, 3000, 482), (1.0, 4000, 50)])
def test_prior_mean_matches_monte_carlo(alpha, c_fmax, num_images):
    prior = build_prior(PowerLawPriorConfig(c_fmax, num_images, alpha=alpha))
    samples = prior.sample(400_000, np.random.default_rng(5))
    standard_error = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - prior.mean()) < 4 * standard_error


def test_baseline_predictors():
    prior = build_prior(PowerLawPriorConfig(3000, 482))
    mean_count = prior_mean_image_count(prior)
    assert mean_count == pytest.approx(64 * prior.mean())
    assert 200 < mean_count < 220  # 212.2 for ShanghaiTech A's settings
    np.testing.assert_array_equal(mean_count_predictions(prior, 3), [mean_count] * 3)
    draws = prior_draw_predictions(prior, 2000, np.random.default_rng(1))
    assert draws.shape == (2000,)
    assert abs(draws.mean() - mean_count) < 4 * draws.std() / math.sqrt(2000)
    np.testing.assert_array_equal(draws, prior_draw_predictions(prior, 2000,
                                                                np.random.default_rng(1)))
    scaled = prior_draw_predictions(prior, 2000, np.random.default_rng(1), mode="scaled_cell")
    assert scaled.std() > 3 * draws.std()  # one cell × 64 spreads far more than 64 cells


@pytest.mark.parametrize("call", [
    lambda: power_law_tail_integral(2.0, -1.0, 0.1),
    lambda: power_law_tail_integral(2.0, 2.0, 0.0),
    lambda: power_law_tail_integral(0.0, 2.0, 0.1),
    lambda: power_law_cdf(2.0, 2.0, 0.1, "approximate"),
    lambda: choose_lambda(3000 / 64, 0, 2.0),
    lambda: choose_lambda(0.5, 100, 2.0),
    lambda: choose_lambda(3000 / 64, 482, 2.0, lambda_max=0.01),
    lambda: choose_shift_threshold(2.0, 0.028, cdf_level=1.5),
    lambda: choose_shift_threshold(1.0, 0.001, grid_stop=2.0),
    lambda: PowerLawPriorConfig(c_fmax=-1, num_images=10),
    lambda: PowerLawPriorConfig(c_fmax=3000, num_images=10, cells_per_crop=0),
    lambda: PowerLawPrior(alpha=2.0, lam=0.03, shift_threshold=0.0),
    lambda: sample_truncated_power_law(-1, 2.0, 0.03, np.random.default_rng(0)),
    lambda: sample_truncated_power_law(10, 2.0, 0.03, np.random.RandomState(0)),
    lambda: prior_draw_predictions(build_prior(PowerLawPriorConfig(3000, 482)), 3,
                                   np.random.default_rng(0), mode="median"),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
