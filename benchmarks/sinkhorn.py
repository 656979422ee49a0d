"""Speed of the ot/ library: Sinkhorn loss (both backends) and the prior sampler.

Run: .venv/bin/python benchmarks/sinkhorn.py [--threads N] [--repeats N]

Prints ``BENCH <name> <value> <unit>`` lines (comment lines start with '#'):

- sinkhorn_<backend>_ms_<N>x<M>: forward + backward of ``sinkhorn_loss`` (float32, CPU),
  median over repeats, predictions = 1.5 × prior draws + 0.3 against prior draws (SHA prior).
  The reference backend runs its defaults (epsilon 0.1, up to 1000 iterations, tolerance 0.1);
  geomloss its defaults (scaling 0.5, no debiasing).
- sinkhorn_unrolled_autograd_ms_288x1568_100it / sinkhorn_reference_ms_288x1568_100it: the
  baseline, backpropagating through every iteration as the reference code does, against ours,
  both at 100 iterations; *_saved_mib_*: bytes autograd keeps for backward.
- sinkhorn_backend_rel_diff: |geomloss - reference| / reference with both set alike (entropic
  objective, epsilon 0.1, same squared-difference cost, no debiasing), the reference loop run
  to convergence and geomloss annealing slowly (scaling 0.99), on 40 × 70 prior draws (the
  reference needs tens of thousands of iterations to converge at 288 × 1568).
  sinkhorn_backend_rel_diff_defaults_288x1568: the same two objectives at each backend's
  default iteration settings on the training-size problem.
- sinkhorn_official_ms_288x1568 / sinkhorn_reference_ms_288x1568 (above) /
  sinkhorn_reference_dense_ms_288x1568: forward + backward of a re-implementation of the official
  CSS-CCNN ``SinkhornSolver`` (autograd through every iteration, kernel rebuilt twice per
  iteration, log(a + 1e-8), a host read per iteration for its stopping rule; one timed run), of
  ours (``solver="fast"``, the default) and of our dense loop (``solver="dense"``), same inputs,
  same run. sinkhorn_reference_vs_official_speedup is the first over the second.
  sinkhorn_reference_rel_diff: |ours on the float32 inputs - the dense loop in float64| / the
  latter (the reference loop's value to float64 rounding); *_dense_f32_rel_diff: the same for the
  dense loop in float32 (its rounding of exponents ~1e4); *_official_rel_diff: ours against the
  official re-implementation's float32 value (which also carries its 1e-8 in the weights).
- prior_sample_us_1568: one draw of 1568 shifted prior samples; baseline
  prior_sample_per_sample_loop_us_1568, a per-sample rejection and shift loop in the style of
  the reference (powerlaw's old sampler + the reference's Python loop).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from ot import PowerLawPriorConfig, SinkhornConfig, build_prior, sinkhorn_loss, squared_difference_cost


def bench(name: str, value: float, unit: str) -> None:
    print(f"BENCH {name} {value:.6g} {unit}", flush=True)


def median_seconds(function, repeats: int, warm_up: bool = True) -> float:
    if warm_up:
        function()  # not timed
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def problem(prior, num_predictions: int, num_samples: int, seed: int,
            dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    predictions = torch.from_numpy(prior.sample(num_predictions, rng) * 1.5 + 0.3).to(dtype)
    samples = torch.from_numpy(prior.sample(num_samples, rng)).to(dtype)
    return predictions, samples


def forward_backward(predictions: torch.Tensor, samples: torch.Tensor, config: SinkhornConfig):
    leaf = predictions.clone().requires_grad_()
    sinkhorn_loss(leaf, samples, config).backward()
    return leaf.grad


def unrolled_autograd_loss(x: torch.Tensor, y: torch.Tensor, epsilon: float,
                           iterations: int) -> torch.Tensor:
    """Baseline: the reference's loop with autograd through every iteration."""
    cost = squared_difference_cost(x, y)
    log_a, log_b = -math.log(x.numel()), -math.log(y.numel())
    u = torch.zeros(x.numel(), dtype=x.dtype)
    v = torch.zeros(y.numel(), dtype=x.dtype)
    for _ in range(iterations):
        u = epsilon * (log_a - torch.logsumexp((v[None, :] - cost) / epsilon, dim=1))
        v = epsilon * (log_b - torch.logsumexp((u[:, None] - cost) / epsilon, dim=0))
    plan = torch.exp((u[:, None] + v[None, :] - cost) / epsilon)
    return (plan * cost).sum()


def official_solver_loss(x: torch.Tensor, y: torch.Tensor, epsilon: float = 0.1,
                         iterations: int = 1000, threshold: float = 0.1) -> torch.Tensor:
    """Baseline: the official CSS-CCNN ``SinkhornSolver.forward`` for one problem, transcribed
    (autograd through every iteration; its 1e-8 in the log weights; stop when the summed change
    of u and v < threshold, read on the host every iteration); returns <P, C>."""
    a = torch.full((x.numel(),), 1.0 / x.numel(), dtype=x.dtype)
    b = torch.full((y.numel(),), 1.0 / y.numel(), dtype=x.dtype)
    u, v = torch.zeros_like(a), torch.zeros_like(b)
    cost = (x[:, None] - y[None, :]) ** 2
    for _ in range(iterations):
        u0, v0 = u, v
        kernel = (-cost + u[:, None] + v[None, :]) / epsilon
        u = epsilon * (torch.log(a + 1e-8) - torch.logsumexp(kernel, dim=1)) + u
        kernel = (-cost + u[:, None] + v[None, :]) / epsilon
        v = epsilon * (torch.log(b + 1e-8) - torch.logsumexp(kernel.t(), dim=1)) + v
        if float((u - u0).abs().sum() + (v - v0).abs().sum()) < threshold:
            break
    plan = torch.exp((-cost + u[:, None] + v[None, :]) / epsilon)
    return (plan * cost).sum()


def compare_with_official(prior, repeats: int) -> None:
    """The speed-up over the official solver and the agreement with the dense loop (docstring)."""
    predictions, samples = problem(prior, 288, 1568, seed=1)
    leaf = predictions.clone().requires_grad_()
    start = time.perf_counter()
    official = official_solver_loss(leaf, samples)
    official.backward()
    official_seconds = time.perf_counter() - start
    bench("sinkhorn_official_ms_288x1568", official_seconds * 1e3, "ms")
    ours = median_seconds(lambda: forward_backward(predictions, samples, SinkhornConfig()), repeats)
    dense = median_seconds(lambda: forward_backward(predictions, samples, SinkhornConfig(solver="dense")), 1)
    bench("sinkhorn_reference_dense_ms_288x1568", dense * 1e3, "ms")
    bench("sinkhorn_reference_vs_official_speedup", official_seconds / ours, "x")
    exact = float(sinkhorn_loss(predictions.double(), samples.double(), SinkhornConfig(solver="dense")))
    value = float(sinkhorn_loss(predictions, samples))
    dense_f32 = float(sinkhorn_loss(predictions, samples, SinkhornConfig(solver="dense")))
    bench("sinkhorn_reference_rel_diff", abs(value - exact) / exact, "rel")
    bench("sinkhorn_reference_dense_f32_rel_diff", abs(dense_f32 - exact) / exact, "rel")
    bench("sinkhorn_reference_official_rel_diff", abs(value - float(official)) / float(official), "rel")


def saved_mebibytes(build_loss) -> float:
    """MiB of tensors autograd saves for backward while ``build_loss()`` runs."""
    total = [0]

    def pack(tensor):
        total[0] += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        build_loss()
    return total[0] / 2 ** 20


def per_sample_loop_prior(prior, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Baseline sampler: one Python-level rejection loop per sample (exponential proposal,
    accept with c^-alpha), then a Python loop replacing small values, as the reference does."""
    samples = np.empty(num_samples)
    for index in range(num_samples):
        while True:
            value = 1.0 - math.log(1.0 - rng.random()) / prior.lam
            if rng.random() < value ** -prior.alpha:
                samples[index] = value
                break
    for index in range(num_samples):
        if samples[index] < prior.shift_threshold:
            samples[index] = rng.uniform(0.0, prior.shift_threshold)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the 2-core machine is shared)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed repeats per figure (the reference at 2000 x 2000: one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {args.threads} thread(s), CPU, float32; "
          f"timings are noisy when other jobs share the machine", flush=True)
    prior = build_prior(PowerLawPriorConfig(c_fmax=3000, num_images=482))

    rng = np.random.default_rng(0)
    ours = median_seconds(lambda: prior.sample(1568, rng), 200)
    bench("prior_sample_us_1568", ours * 1e6, "us")
    loop = median_seconds(lambda: per_sample_loop_prior(prior, 1568, rng), 5)
    bench("prior_sample_per_sample_loop_us_1568", loop * 1e6, "us")

    for backend in ("reference", "geomloss"):
        config = SinkhornConfig(backend=backend)
        for size in ((288, 1568), (2000, 2000)):
            predictions, samples = problem(prior, *size, seed=1)
            slow = (backend, size) == ("reference", (2000, 2000))  # ~10 s a call
            seconds = median_seconds(lambda: forward_backward(predictions, samples, config),
                                     1 if slow else args.repeats, warm_up=not slow)
            bench(f"sinkhorn_{backend}_ms_{size[0]}x{size[1]}", seconds * 1e3, "ms")

    compare_with_official(prior, args.repeats)
    predictions, samples = problem(prior, 288, 1568, seed=1)
    hundred = SinkhornConfig(max_iterations=100, tolerance=0.0)
    leaf = predictions.clone().requires_grad_()
    unrolled = median_seconds(
        lambda: unrolled_autograd_loss(leaf, samples, 0.1, 100).backward(), 3)
    bench("sinkhorn_unrolled_autograd_ms_288x1568_100it", unrolled * 1e3, "ms")
    ours_hundred = median_seconds(lambda: forward_backward(predictions, samples, hundred), 3)
    bench("sinkhorn_reference_ms_288x1568_100it", ours_hundred * 1e3, "ms")
    bench("sinkhorn_unrolled_autograd_saved_mib_288x1568_100it",
          saved_mebibytes(lambda: unrolled_autograd_loss(leaf, samples, 0.1, 100)), "MiB")
    bench("sinkhorn_reference_saved_mib_288x1568",
          saved_mebibytes(lambda: sinkhorn_loss(leaf, samples, SinkhornConfig())), "MiB")

    alike_reference = SinkhornConfig(objective="entropic", max_iterations=20_000,
                                     tolerance=1e-9, compute_dtype=torch.float64)
    alike_geomloss = SinkhornConfig(backend="geomloss", scaling=0.99,
                                    compute_dtype=torch.float64)
    small_x, small_y = problem(prior, 40, 70, seed=4, dtype=torch.float64)
    small_x, small_y = small_x.clamp(max=10.0), small_y.clamp(max=8.0)
    converged = float(sinkhorn_loss(small_x, small_y, alike_reference))
    annealed = float(sinkhorn_loss(small_x, small_y, alike_geomloss))
    bench("sinkhorn_backend_rel_diff", abs(annealed - converged) / abs(converged), "rel")
    defaults_reference = SinkhornConfig(objective="entropic", compute_dtype=torch.float64)
    defaults_geomloss = SinkhornConfig(backend="geomloss", compute_dtype=torch.float64)
    reference_value = float(sinkhorn_loss(predictions, samples, defaults_reference))
    geomloss_value = float(sinkhorn_loss(predictions, samples, defaults_geomloss))
    bench("sinkhorn_backend_rel_diff_defaults_288x1568",
          abs(geomloss_value - reference_value) / abs(reference_value), "rel")


if __name__ == "__main__":
    main()
