"""Latent MixUp for the AL-AC distribution classifier (paper section 3.4, eq. 3).

Two samples' backbone features and distribution labels are mixed with
``lambda' = max(t, 1 - t)``, ``t ~ Beta(alpha, alpha)``, ``alpha = 0.5``:
``z = lambda' * phi(x1) + (1 - lambda') * phi(x2)``, ``y = lambda' * y1 + (1 - lambda') * y2``.
Because ``lambda' >= 0.5`` the mix stays closer to its first sample.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

#: The paper's Beta(alpha, alpha) parameter.
DEFAULT_MIXUP_ALPHA = 0.5


def _numpy_generator(generator) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        # One draw from the torch generator seeds a numpy generator: deterministic, and it
        # advances the torch generator so consecutive calls differ.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return np.random.default_rng(seed)
    raise ValueError(
        f"generator must be a numpy.random.Generator or torch.Generator, got {type(generator).__name__}"
    )


def sample_mixup_weights(generator, count: int = 1, alpha: float = DEFAULT_MIXUP_ALPHA) -> torch.Tensor:
    """Draw ``count`` MixUp weights ``lambda' = max(t, 1 - t)``, ``t ~ Beta(alpha, alpha)``.

    Args:
        generator: ``numpy.random.Generator`` (drawn from directly) or ``torch.Generator`` (one
            64-bit draw from it seeds the Beta sampler); the same generator state gives the
            same weights.
        count: number of weights (one per mixed pair), ``>= 1``.
        alpha: Beta parameter, ``> 0``.

    Returns: ``(count,)`` float32 tensor, values in ``[0.5, 1]``.
    """
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a positive finite number, got {alpha!r}")
    t = _numpy_generator(generator).beta(alpha, alpha, size=int(count))
    return torch.from_numpy(np.maximum(t, 1.0 - t)).to(torch.float32)


@dataclasses.dataclass(frozen=True)
class LatentMixUp:
    """Mixed features and labels of ``P`` pairs.

    Attributes:
        features: ``(P, C, h, w)`` mixed features ``z``.
        labels: ``(P,)`` mixed distribution labels ``y`` (float, in ``[0, 1]`` for 0/1 inputs).
        weights: ``(P,)`` the ``lambda'`` used for each pair.
    """

    features: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor


def latent_mixup(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    labels_a: torch.Tensor,
    labels_b: torch.Tensor,
    weights: torch.Tensor | float,
) -> LatentMixUp:
    """Mix pair ``i`` = ``(features_a[i], features_b[i])`` with weight ``weights[i]`` (eq. 3).

    Args:
        features_a, features_b: ``(P, C, h, w)`` features of the first and second sample of
            each pair (same shape).
        labels_a, labels_b: ``(P,)`` distribution labels (labeled 0, unlabeled 1).
        weights: ``(P,)`` tensor or a float, each in ``[0, 1]``; the weight of the first sample.

    Returns: :class:`LatentMixUp`; gradients flow into both feature tensors.
    """
    if features_a.shape != features_b.shape or features_a.ndim != 4:
        raise ValueError(
            "features_a and features_b must both have shape (P, C, h, w), got "
            f"{tuple(features_a.shape)} and {tuple(features_b.shape)}"
        )
    pairs = features_a.shape[0]
    if labels_a.shape != (pairs,) or labels_b.shape != (pairs,):
        raise ValueError(
            f"labels_a and labels_b must have shape ({pairs},), got {tuple(labels_a.shape)} and {tuple(labels_b.shape)}"
        )
    lam = torch.as_tensor(weights, dtype=features_a.dtype, device=features_a.device)
    if lam.ndim == 0:
        lam = lam.expand(pairs)
    if lam.shape != (pairs,):
        raise ValueError(f"weights must be a float or have shape ({pairs},), got {tuple(lam.shape)}")
    if bool(((lam < 0) | (lam > 1)).any()):
        raise ValueError(f"weights must lie in [0, 1], got {lam.tolist()}")
    lam_features = lam.view(pairs, 1, 1, 1)
    mixed = lam_features * features_a + (1.0 - lam_features) * features_b
    lam_labels = lam.to(labels_a.dtype if labels_a.is_floating_point() else torch.float32)
    mixed_labels = lam_labels * labels_a + (1.0 - lam_labels) * labels_b
    return LatentMixUp(features=mixed, labels=mixed_labels, weights=lam)
