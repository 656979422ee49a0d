"""Sinkhorn loss between predicted cell counts and prior samples (1-D empirical measures).

One function, two backends:

- ``"reference"``: the CSS-CCNN reference solver (val-iisc/css-ccnn ``sinkhorn.py``):
  log-domain alternating updates, uniform weights, cost C_ij = (x_i - y_j)^2, fixed epsilon
  (0.1), at most ``max_iterations`` (1000), stop as soon as
  sum_i |u_i - u_i'| + sum_j |v_j - v_j'| < ``tolerance`` (0.1) after an iteration, where u, v
  are the potentials of the plan P_ij = exp((u_i + v_j - C_ij) / epsilon). (The reference
  averages that sum over a batch of problems; for our single problem it is the sum itself.)
- ``"geomloss"``: ``geomloss.SamplesLoss("sinkhorn", backend="tensorized")`` with the same
  cost (passed explicitly, not geomloss's default C/2) and blur = sqrt(epsilon), so the final
  temperature is the same epsilon; geomloss anneals epsilon (``scaling``) instead of iterating
  at a fixed one, and can debias.

Objectives (``SinkhornConfig.objective``; None picks the backend's own):

- ``"transport_cost"`` (reference only, its default and what the reference returns):
  <P, C> for the entropic plan P after the loop stops.
- ``"entropic"`` (geomloss's default; also available from the reference loop): the entropic
  OT cost OT_eps = min_P <P, C> + eps KL(P | a⊗b), evaluated by its dual <a, f> + <b, g>; with
  ``debias=True`` (geomloss only) the Sinkhorn divergence OT_eps(x, y) - (OT_eps(x, x) +
  OT_eps(y, y)) / 2. The two objectives differ by eps · KL <= eps log min(N, M).

Convergence: with the reference's settings the loop rarely meets its tolerance on realistic
counts (288 predictions against 1568 prior samples ran all 1000 iterations in tests), so its
value is that of a partly converged plan. geomloss reaches epsilon by annealing and makes a
single step there; its dual value is then close (0.1-8 % in tests, closer as ``scaling`` -> 1),
its plan's <P, C> is not, which is why geomloss offers only the entropic objective.

Gradients flow to the predictions only, and no iteration is ever kept for backward. The
reference loop runs without autograd; the gradient is then <P, dC/dx> with P held fixed, which
by the envelope theorem is the exact gradient of OT_eps at convergence (geomloss gives the same
through its final extrapolation step). The reference code instead backpropagates through every
stored iteration (1000 × N × M memory), differentiating <P(x), C(x)> including P's dependence
on x. For squared differences <P, dC/dx>_i = 2 (r_i x_i - (P y)_i) with r = P 1, so the graph
holds O(N) numbers.

Which gradient we follow: the fixed-plan (envelope) one, not the reference's unrolled one (the two
agree to cosine 0.77-0.998 on prior-like inputs). Reasons: it is the derivative of the quantity the
loop approximates (OT_eps; exact at convergence, where the unrolled gradient tends to it too), it
needs no stored iterations (O(N) memory instead of O(iterations x N x M)), and it does not depend on
how far an arbitrary iteration limit let the loop run. The unrolled gradient differentiates the
truncation itself.

Solvers for the reference backend (``SinkhornConfig.solver``): "fast" (``ot.sinkhorn_fast``: the
same iterates and stopping iteration as stabilised scaling iterations, two matrix-vector products
per iteration, float64 potentials; the default) and "dense" (``reference_sinkhorn_potentials``
below: the loop written out, the tests' oracle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

SinkhornBackend = Literal["reference", "geomloss", "exact"]
SinkhornObjective = Literal["transport_cost", "entropic"]
SinkhornSolver = Literal["fast", "dense"]
BACKENDS: tuple[str, ...] = ("reference", "geomloss", "exact")
OBJECTIVES: tuple[str, ...] = ("transport_cost", "entropic")
SOLVERS: tuple[str, ...] = ("fast", "dense")

# The reference multiplies the Sinkhorn loss by 0.01 before backpropagating it.
REFERENCE_LOSS_WEIGHT = 0.01


@dataclass(frozen=True)
class SinkhornConfig:
    """Settings of ``sinkhorn_loss``; the defaults are the CSS-CCNN reference's.

    ``max_iterations``, ``tolerance`` and ``solver`` apply to the reference backend, ``scaling``
    and ``debias`` to geomloss. ``solver``: "fast" (``ot.sinkhorn_fast``, the same iterates and
    stopping iteration as stabilised scaling iterations, float64 potentials, ~10x faster on CPU)
    or "dense" (the log-domain loop written out, in ``compute_dtype``; the tests' oracle).
    ``objective`` None means "transport_cost" for the reference and "entropic" for geomloss.
    ``compute_dtype`` (None: the predictions' dtype, float32 for half precision) is the dtype of
    the cost matrix and potentials (the fast solver keeps its potentials in float64 whatever it
    is); the loss comes back in the predictions' dtype.
    """

    backend: SinkhornBackend = "reference"
    epsilon: float = 0.1
    max_iterations: int = 1000
    tolerance: float = 0.1
    objective: SinkhornObjective | None = None
    debias: bool = False
    scaling: float = 0.5
    compute_dtype: torch.dtype | None = None
    solver: SinkhornSolver = "fast"

    @property
    def resolved_objective(self) -> str:
        """``objective``, or the backend's own when None: "transport_cost" for the reference,
        "entropic" for geomloss."""
        if self.objective is not None:
            return self.objective
        return "transport_cost" if self.backend == "reference" else "entropic"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.objective is not None and self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be None or one of {OBJECTIVES}, "
                             f"got {self.objective!r}")
        if self.backend == "geomloss" and self.objective == "transport_cost":
            raise ValueError(
                "objective='transport_cost' needs backend='reference': geomloss stops after "
                "annealing, where its dual value is accurate but <P, C> is not (7-47 % off "
                "in tests); use objective='entropic' (or None) with geomloss")
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon)
                and self.epsilon > 0):
            raise ValueError(f"epsilon must be a finite number > 0, got {self.epsilon!r}")
        if not isinstance(self.max_iterations, (int, np.integer)) \
                or isinstance(self.max_iterations, bool) or self.max_iterations < 1:
            raise ValueError(f"max_iterations must be an integer >= 1, "
                             f"got {self.max_iterations!r}")
        if not (isinstance(self.tolerance, (int, float)) and self.tolerance >= 0):
            raise ValueError(f"tolerance must be a number >= 0, got {self.tolerance!r}")
        if not (isinstance(self.scaling, (int, float)) and 0.0 < self.scaling < 1.0):
            raise ValueError(f"scaling must lie in (0, 1), got {self.scaling!r}")
        if self.debias and self.backend != "geomloss":
            raise ValueError("debias=True needs backend='geomloss' "
                             f"(got backend={self.backend!r})")
        if self.compute_dtype is not None and self.compute_dtype not in (
                torch.float32, torch.float64):
            raise ValueError(f"compute_dtype must be torch.float32, torch.float64 or None, "
                             f"got {self.compute_dtype!r}")


@dataclass(frozen=True)
class SinkhornPotentials:
    """Dual potentials of the plan P_ij = exp((u_i + v_j - C_ij) / epsilon) (marginal weights
    absorbed, as in the reference): ``row`` (N,) and ``column`` (M,), no gradient.

    ``iterations`` is how many Sinkhorn iterations ran and ``converged`` whether the stopping
    rule fired before the iteration limit.
    """

    row: torch.Tensor
    column: torch.Tensor
    iterations: int
    converged: bool


def squared_difference_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C_ij = (x_i - y_j)^2 for x (N,) and y (M,): (N, M), same dtype."""
    return (x[:, None] - y[None, :]) ** 2


def _batched_squared_difference_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """geomloss cost signature: x (B, N, D), y (B, M, D) -> (B, N, M) summed squares."""
    return ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)


def check_loop_inputs(x: torch.Tensor, y: torch.Tensor, epsilon: float, max_iterations: int, tolerance: float) -> None:
    """The reference loops' inputs: x (N,) and y (M,) non-empty 1-D floating tensors, epsilon > 0,
    max_iterations >= 1, tolerance >= 0 (shared by the dense and the fast solver)."""
    for name, samples in (("x", x), ("y", y)):
        if not isinstance(samples, torch.Tensor) or samples.dim() != 1 or samples.numel() == 0 \
                or not samples.is_floating_point():
            raise ValueError(f"{name} must be a non-empty 1-D floating tensor, got "
                             f"{type(samples).__name__} {getattr(samples, 'shape', '')}")
    if not (epsilon > 0 and max_iterations >= 1 and tolerance >= 0):
        raise ValueError(f"need epsilon > 0, max_iterations >= 1, tolerance >= 0, got "
                         f"{epsilon!r}, {max_iterations!r}, {tolerance!r}")


def reference_sinkhorn_potentials(x: torch.Tensor, y: torch.Tensor, epsilon: float = 0.1,
                                  max_iterations: int = 1000, tolerance: float = 0.1,
                                  ) -> SinkhornPotentials:
    """The reference's log-domain Sinkhorn loop for 1-D samples x (N,) and y (M,).

    Uniform weights a = 1/N, b = 1/M, potentials start at 0. Each iteration updates u then v:
    u_i = eps log a - eps logsumexp_j((v_j - C_ij) / eps), v likewise with the new u,
    and stops when sum |delta u| + sum |delta v| < tolerance. Runs without autograd.
    """
    check_loop_inputs(x, y, epsilon, max_iterations, tolerance)
    with torch.no_grad():
        num_rows, num_columns = x.numel(), y.numel()
        log_kernel = squared_difference_cost(x, y) / -epsilon  # (N, M)
        log_kernel_transposed = log_kernel.t().contiguous()  # (M, N)
        row_buffer = torch.empty_like(log_kernel)
        column_buffer = torch.empty_like(log_kernel_transposed)
        log_row_weight = -math.log(num_rows)
        log_column_weight = -math.log(num_columns)
        row = torch.zeros(num_rows, dtype=x.dtype, device=x.device)  # u / eps
        column = torch.zeros(num_columns, dtype=x.dtype, device=x.device)  # v / eps
        scaled_tolerance = tolerance / epsilon
        converged = False
        iterations = 0
        for iterations in range(1, max_iterations + 1):
            new_row = log_row_weight - _row_logsumexp(log_kernel, column, row_buffer)
            new_column = log_column_weight - _row_logsumexp(log_kernel_transposed, new_row,
                                                            column_buffer)
            change = (new_row - row).abs().sum() + (new_column - column).abs().sum()
            row, column = new_row, new_column
            if change.item() < scaled_tolerance:
                converged = True
                break
        return SinkhornPotentials(row=row * epsilon, column=column * epsilon,
                                  iterations=iterations, converged=converged)


# exp() below these arguments gives subnormal numbers, which CPUs handle up to 100x slower.
# Clamping there changes each log-sum-exp by < M · exp(floor) relative (the largest term is
# exp(0) = 1): 4e-32 for M = 2000 in float32, far below rounding.
_EXP_FLOOR = {torch.float32: -80.0, torch.float64: -700.0}


def _row_logsumexp(log_kernel: torch.Tensor, offsets: torch.Tensor,
                   buffer: torch.Tensor) -> torch.Tensor:
    """logsumexp_j(log_kernel_ij + offsets_j) for every row i, reusing ``buffer`` (same shape
    as ``log_kernel``) so that no (N, M) tensor is allocated per iteration."""
    torch.add(log_kernel, offsets[None, :], out=buffer)
    row_max = buffer.amax(dim=1)
    buffer.sub_(row_max[:, None]).clamp_(min=_EXP_FLOOR.get(buffer.dtype, -80.0)).exp_()
    return buffer.sum(dim=1).log_().add_(row_max)


def transport_plan(x: torch.Tensor, y: torch.Tensor, potentials: SinkhornPotentials,
                   epsilon: float) -> torch.Tensor:
    """P_ij = exp((u_i + v_j - C_ij) / eps): (N, M), no gradient."""
    with torch.no_grad():
        cost = squared_difference_cost(x, y)
        return torch.exp((potentials.row[:, None] + potentials.column[None, :] - cost)
                         / epsilon)


def _geomloss_samples_loss(config: SinkhornConfig, diameter: float):
    from geomloss import SamplesLoss  # imported here: only this backend needs it

    return SamplesLoss("sinkhorn", p=2, blur=math.sqrt(config.epsilon),
                       cost=_batched_squared_difference_cost, debias=config.debias,
                       scaling=config.scaling, diameter=diameter, backend="tensorized")


def _geomloss_diameter(x: torch.Tensor, y: torch.Tensor, epsilon: float) -> float:
    both = torch.cat([x.detach(), y])
    return max(float(both.max() - both.min()), math.sqrt(epsilon))


def _call_geomloss(loss_fn, x: torch.Tensor, y: torch.Tensor):
    # geomloss switches autograd on globally when it returns; keep the caller's mode.
    with torch.set_grad_enabled(torch.is_grad_enabled()):
        return loss_fn(x[:, None], y[:, None])


def _as_1d_tensor(values: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    if isinstance(values, np.ndarray):
        values = torch.from_numpy(np.ascontiguousarray(values))
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, "
                         f"got {type(values).__name__}")
    if values.numel() == 0:
        raise ValueError(f"{name} must hold at least one value, got shape {tuple(values.shape)}")
    if not (values.is_floating_point() or values.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name} must hold real numbers, got dtype {values.dtype}")
    flat = values.reshape(-1)
    if not bool(torch.isfinite(flat.detach()).all()):
        raise ValueError(f"{name} holds non-finite values (nan or inf)")
    return flat


def _loss_with_fixed_plan(x: torch.Tensor, y: torch.Tensor, plan: torch.Tensor,
                          value: torch.Tensor) -> torch.Tensor:
    """A scalar equal to ``value`` whose gradient w.r.t. x is <plan, dC/dx>, C = (x - y)^2."""
    with torch.no_grad():  # in the plan's dtype, then x's
        row_mass = plan.sum(dim=1).to(x.dtype)
        transported = (plan @ y.to(plan.dtype)).to(x.dtype)
    surrogate = (row_mass * x * x).sum() - 2.0 * (transported * x).sum()
    return value.detach() + (surrogate - surrogate.detach())


def exact_wasserstein2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact squared 2-Wasserstein distance between the uniform empirical measures of 1-D x (N,)
    and y (M,): the epsilon -> 0, fully converged limit of the reference's transport cost
    <P, C> with C = (x - y)^2, computed by matching quantile functions (O((N + M) log(N + M)),
    no iterations). Gradient w.r.t. x only: (2/N) (x_i - mean of y over x_i's quantile bin)."""
    xs = torch.sort(x).values
    with torch.no_grad():
        ys = torch.sort(y).values
        n, m = xs.numel(), ys.numel()
        zero = ys.new_zeros(1)
        first = torch.cat([zero, torch.cumsum(ys, 0)]) / m  # integral of F_y^-1 over [0, k/m]
        second = torch.cat([zero, torch.cumsum(ys * ys, 0)]) / m

        def integral(cumulative, values, t):  # integral over [0, t] of a step function
            position = t * m
            k = torch.clamp(torch.floor(position).long(), 0, m - 1)
            return cumulative[k] + (position - k) * values[k] / m

        edges = torch.arange(n + 1, dtype=ys.dtype, device=ys.device) / n
        bin_first = torch.diff(integral(first, ys, edges))  # integral of F_y^-1 over bin i
        y_second = float(second[-1])
    return (xs * xs).sum() / n - 2.0 * (xs * bin_first).sum() + y_second


def sinkhorn_loss(predicted_counts: torch.Tensor, prior_samples: torch.Tensor | np.ndarray,
                  config: SinkhornConfig = SinkhornConfig()) -> torch.Tensor:
    """Sinkhorn loss between predicted cell counts and prior samples: a scalar tensor.

    ``predicted_counts``: floating tensor of any shape (every element is one sample, people per
    cell), usually with gradient. ``prior_samples``: tensor or array of any shape, treated as
    constants (no gradient flows to them). Both are uniform empirical measures. The result has
    the predictions' dtype and device; see the module docstring for backends and objectives.
    """
    if not isinstance(config, SinkhornConfig):
        raise ValueError(f"config must be a SinkhornConfig, got {type(config).__name__}")
    predictions = _as_1d_tensor(predicted_counts, "predicted_counts")
    if not predictions.is_floating_point():
        raise ValueError(f"predicted_counts must be floating point, got {predictions.dtype}")
    targets = _as_1d_tensor(prior_samples, "prior_samples").detach()
    dtype = config.compute_dtype or (predictions.dtype if predictions.dtype in _EXP_FLOOR
                                     else torch.float32)  # half precision: compute in float32
    x = predictions.to(dtype)
    y = targets.to(device=predictions.device, dtype=dtype)
    epsilon = config.epsilon

    if config.backend == "exact":
        return exact_wasserstein2(x, y).to(predictions.dtype)
    if config.backend == "geomloss":
        loss_fn = _geomloss_samples_loss(config, _geomloss_diameter(x, y, epsilon))
        return _call_geomloss(loss_fn, x, y).to(predictions.dtype)

    if config.solver == "fast":
        from ot.sinkhorn_fast import stabilized_sinkhorn_potentials  # it imports this module

        potentials = stabilized_sinkhorn_potentials(x.detach(), y, epsilon, config.max_iterations,
                                                    config.tolerance)
    else:
        potentials = reference_sinkhorn_potentials(x.detach(), y, epsilon, config.max_iterations,
                                                   config.tolerance)
    # The plan and value in the potentials' dtype (float64 from the fast solver).
    x_plan, y_plan = x.detach().to(potentials.row.dtype), y.to(potentials.row.dtype)
    plan = transport_plan(x_plan, y_plan, potentials, epsilon)
    with torch.no_grad():
        if config.resolved_objective == "transport_cost":
            value = (plan * squared_difference_cost(x_plan, y_plan)).sum()
        else:
            value = (potentials.row.mean() + potentials.column.mean()
                     + epsilon * (math.log(x.numel()) + math.log(y.numel())))
    return _loss_with_fixed_plan(x, y, plan, value.to(x.dtype)).to(predictions.dtype)
