"""A training loss that is NaN or infinite fails its trial with one clear message.

The training loops already read their summed loss from the device once per epoch (a Python
float); :func:`check_finite_loss` looks at that number, so detection costs no host sync.
(CSS-CCNN's OT losses refuse non-finite predictions at every step by themselves;
:mod:`orchestrator.cssccnn.losses` turns that refusal into the same failure.)
:class:`NonFiniteLoss` carries the failure's ``detail`` and its ``context`` (outermost first),
and prints as ``"trial T (experiment E, seed S), cycle 2, epoch 1, learning rate 1e+30: the
summed training loss is nan (...)"``. Each layer adds what it knows: the loop the epoch and the
learning rate, the trial runner the trial and its cycle (AL-AC) or stage (CSS-CCNN), through
:func:`loss_context`, which also finds the failure when Ray Train returns it wrapped.

A diverged run diverges again when retried with the same settings: the sweep records it as a
failed trial (``status = "failed"``, the message in ``error``) like any other failure.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

HINT = "the training diverged; try a lower learning rate"


class NonFiniteLoss(RuntimeError):
    """A NaN or infinite training loss (or network output): the run diverged.

    ``detail``: what was not finite; ``context``: where, outermost first (trial, cycle or
    stage, epoch, learning rate). Pickles (it crosses Ray Train and Tune process boundaries)."""

    def __init__(self, detail: str, context: tuple[str, ...] = ()):
        super().__init__(detail, tuple(context))
        self.detail, self.context = detail, tuple(context)

    def __str__(self) -> str:
        return f"{', '.join(self.context)}: {self.detail}" if self.context else self.detail

    def within(self, *where: str) -> NonFiniteLoss:
        """The same failure with ``where`` (outermost first) in front of its context."""
        return NonFiniteLoss(self.detail, (*where, *self.context))


def epoch_context(epoch: int, lr: float) -> tuple[str, str]:
    """``("epoch 3", "learning rate 0.001")``: ``epoch`` 1-based, ``lr`` the optimiser's."""
    return f"epoch {epoch}", f"learning rate {lr:g}"


def check_finite_loss(value: float, epoch: int | None = None, lr: float | None = None,
                      what: str = "the summed training loss") -> float:
    """Return ``value`` (a loss already read on the host, e.g. once per epoch) when finite;
    otherwise raise :class:`NonFiniteLoss` naming ``what``, and ``epoch`` / ``lr`` when given."""
    if math.isfinite(value):
        return value
    context = epoch_context(epoch, lr) if epoch is not None and lr is not None else ()
    raise NonFiniteLoss(f"{what} is {value} ({HINT})", context)


def find_nonfinite(error: BaseException | None) -> NonFiniteLoss | None:
    """The :class:`NonFiniteLoss` in ``error`` or what it wraps (its cause or context; Ray
    Train's per-worker failures and the user exception each carries), else ``None``."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NonFiniteLoss):
            return current
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None),
                    getattr(current, "_base_exc", None), getattr(current, "controller_failure", None)]
        failures = getattr(current, "worker_failures", None)
        if isinstance(failures, dict):
            pending += list(failures.values())
    return None


@contextlib.contextmanager
def loss_context(*where: str) -> Iterator[None]:
    """Re-raise a :class:`NonFiniteLoss` raised inside (here or on a Ray Train worker) with
    ``where`` in front of its context; every other exception passes unchanged."""
    try:
        yield
    except Exception as error:
        found = find_nonfinite(error)
        if found is None:
            raise
        raise found.within(*where) from error


def trial_context(config, trial_id: str) -> str:
    """``"trial alac_demo-1a2b3c-s0 (experiment alac_demo, seed 0)"`` for an
    :class:`~orchestrator.config.ExperimentConfig` and the trial's id."""
    return f"trial {trial_id} (experiment {config.experiment}, seed {config.seed})"


__all__ = ["NonFiniteLoss", "check_finite_loss", "epoch_context", "find_nonfinite", "loss_context", "trial_context"]
