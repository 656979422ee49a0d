"""Label-free pretext tasks for a front end (used to start CSRNet without ImageNet weights).

Rotation prediction (Gidaris et al. 2018; CSS-CCNN's stage 1 uses the same task): every view is
shown rotated by 0, 90, 180 and 270 degrees and a small head on the front end's output predicts
which. Tensors in, tensors out.
"""

from __future__ import annotations

import torch
from torch import nn

#: Rotation classes: k quarter turns, k = 0..3.
ROTATIONS = 4


def rotated_views(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, S, S)`` square views -> ``(4B, C, S, S)`` all four rotations (rotation-major:
    the first B are unrotated) and ``(4B,)`` int64 labels = quarter turns (counter-clockwise)."""
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise ValueError(f"views must be (B, C, S, S) squares, got {tuple(x.shape)}")
    views = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(ROTATIONS)])
    labels = torch.arange(ROTATIONS, device=x.device).repeat_interleave(x.shape[0])
    return views, labels


class RotationHead(nn.Module):
    """Front-end features ``(B, C, h, w)`` -> 2 x 2 average pool -> linear -> ``(B, 4)`` logits.

    The 2 x 2 pool keeps where things are (a global pool would make rotations of a symmetric
    layout indistinguishable); ``generator`` seeds the linear layer (N(0, 0.01), bias 0)."""

    def __init__(self, in_channels: int, generator: torch.Generator | None = None):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.linear = nn.Linear(4 * in_channels, ROTATIONS)
        nn.init.normal_(self.linear.weight, mean=0.0, std=0.01, generator=generator)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(features).flatten(1))
