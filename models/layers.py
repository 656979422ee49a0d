"""Small building blocks shared by the networks: channel scaling, padding to a multiple of 8,
gradient reversal, argument checks.

Everything here is pure: tensors in, tensors out, no state beyond the modules' parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Every network in this package outputs density at 1/8 of the input resolution.
OUTPUT_STRIDE = 8


def check_width(width: float) -> float:
    """Validate a width multiplier (``> 0`` and finite) and return it as ``float``."""
    try:
        value = float(width)
    except (TypeError, ValueError) as e:
        raise ValueError(f"width must be a positive number, got {width!r}") from e
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"width must be a positive finite number, got {width!r}")
    return value


def scaled_channels(channels: int, width: float) -> int:
    """Channel count of a layer in a width-scaled network: ``max(1, round(channels * width))``.

    ``width = 1.0`` returns ``channels`` unchanged (the paper's network). Python's ``round``
    rounds halves to even (``round(0.5) == 0``, then raised to 1 by the ``max``).
    """
    return max(1, int(round(channels * check_width(width))))


def check_image_batch(x: torch.Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``x`` is a floating ``(B, 3, H, W)`` tensor with B, H, W >= 1."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[0], x.shape[2], x.shape[3]) < 1:
        raise ValueError(f"{name} must have shape (B, 3, H, W) with B, H, W >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating tensor (normalise images first, see models.normalize), "
            f"got dtype {x.dtype}"
        )


def output_size(height: int, width: int) -> tuple[int, int]:
    """Density-map size ``(ceil(H/8), ceil(W/8))`` for an input of ``height x width`` pixels."""
    return -(-int(height) // OUTPUT_STRIDE), -(-int(width) // OUTPUT_STRIDE)


def pad_to_multiple(x: torch.Tensor, multiple: int = OUTPUT_STRIDE) -> torch.Tensor:
    """Zero-pad a ``(B, C, H, W)`` tensor at the bottom and right up to multiples of ``multiple``.

    Returns ``x`` itself when no padding is needed (nothing is modified in place either way).
    Applied to already normalised inputs, zero means "the mean colour" for both networks.
    """
    pad_h = (-x.shape[-2]) % multiple
    pad_w = (-x.shape[-1]) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="constant", value=0.0)


class _GradientReversalFunction(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``multiplier``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, multiplier: float) -> torch.Tensor:
        ctx.multiplier = multiplier
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output * ctx.multiplier, None


def gradient_reversal(x: torch.Tensor, multiplier: float = -1.0) -> torch.Tensor:
    """Gradient reversal (Ganin & Lempitsky): forward is the identity, backward multiplies the
    gradient by ``multiplier`` (-1 in the AL-AC paper, which flips its sign exactly)."""
    return _GradientReversalFunction.apply(x, float(multiplier))


class GradientReversal(nn.Module):
    """Module form of :func:`gradient_reversal`; ``multiplier`` is a plain float (not trained)."""

    def __init__(self, multiplier: float = -1.0):
        super().__init__()
        multiplier = float(multiplier)
        if not math.isfinite(multiplier):
            raise ValueError(f"multiplier must be finite, got {multiplier!r}")
        self.multiplier = multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gradient_reversal(x, self.multiplier)

    def extra_repr(self) -> str:
        return f"multiplier={self.multiplier}"


def default_generator(generator: torch.Generator | None) -> torch.Generator:
    """The generator to initialise weights with: ``generator``, or a fresh one seeded 0.

    Networks built without a generator are therefore identical (deterministic), never drawn
    from torch's global random state.
    """
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator
