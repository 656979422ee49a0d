"""Losses of AL-AC (paper section 3.5): density regression, distribution classification, total.

* ``L_reg = 1/(2K) * sum_k ||d_k^pred - d_k^gt||_2^2`` over the K labeled samples of the batch
  (eq. 4): squared error summed over pixels and samples, divided by ``2K``.
* ``L_dc``: binary cross entropy with logits, labeled = 0, unlabeled = 1, computed on each
  sample of a pair and on the pair's latent mix. Per pair the three terms are summed; over
  pairs they are averaged: ``L_dc = mean_pairs(BCE(a) + BCE(b) + BCE(mix))``.
* ``L = L_reg + beta * L_dc`` with ``beta = 3`` (eq. 5).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from models.csrnet import CSRNet, DomainClassifier
from models.mixup import DEFAULT_MIXUP_ALPHA, latent_mixup, sample_mixup_weights

#: The paper's weight of the distribution classification loss.
DEFAULT_BETA = 3.0
#: Distribution labels.
LABELED, UNLABELED = 0.0, 1.0


def density_regression_loss(
    predicted: torch.Tensor, target: torch.Tensor, labeled: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 4: ``sum over labeled k of ||predicted_k - target_k||^2 / (2K)``.

    Args:
        predicted: ``(B, 1, h, w)`` predicted density (people per output pixel).
        target: ``(B, 1, h, w)`` ground-truth density at the same resolution.
        labeled: optional ``(B,)`` bool mask; only these samples count (``K = labeled.sum()``).
            ``None`` = all samples are labeled. Rows of unlabeled samples in ``target`` are
            ignored (any values).

    Returns: scalar tensor; exactly 0 (still connected to the graph) when ``K = 0``.
    """
    if predicted.shape != target.shape or predicted.ndim != 4:
        raise ValueError(
            f"predicted and target must have the same (B, 1, h, w) shape, got "
            f"{tuple(predicted.shape)} and {tuple(target.shape)}"
        )
    if labeled is None:
        labeled = torch.ones(predicted.shape[0], dtype=torch.bool, device=predicted.device)
    if labeled.shape != (predicted.shape[0],) or labeled.dtype != torch.bool:
        raise ValueError(f"labeled must be a ({predicted.shape[0]},) bool tensor, got {labeled.dtype} {tuple(labeled.shape)}")
    # masked, not indexed: no host sync on the labeled count, so a CUDA step never waits for it
    mask = labeled.view(-1, 1, 1, 1)
    diff = torch.where(mask, predicted - target.to(predicted.dtype), torch.zeros((), dtype=predicted.dtype,
                                                                                device=predicted.device))
    k = labeled.sum().clamp(min=1).to(predicted.dtype)
    return diff.pow(2).sum() / (2.0 * k)


def domain_classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross entropy with logits over ``(N,)`` logits and ``(N,)`` labels in [0, 1]."""
    if logits.shape != labels.shape or logits.ndim != 1:
        raise ValueError(f"logits and labels must both have shape (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


@dataclasses.dataclass(frozen=True)
class AlignmentLoss:
    """The AL-AC last-cycle loss of one minibatch and its parts (all scalar tensors except
    ``mixup_weights``). ``total`` is what to back-propagate."""

    total: torch.Tensor
    regression: torch.Tensor
    domain: torch.Tensor
    domain_individual: torch.Tensor
    domain_mixed: torch.Tensor
    mixup_weights: torch.Tensor


def alignment_loss(
    model: CSRNet,
    classifier: DomainClassifier,
    images: torch.Tensor,
    density_targets: torch.Tensor,
    labeled: torch.Tensor,
    generator,
    beta: float = DEFAULT_BETA,
    alpha: float = DEFAULT_MIXUP_ALPHA,
    use_mixup: bool = True,
) -> AlignmentLoss:
    """AL-AC loss with distribution alignment for one minibatch of ``B = 2P`` patches.

    Sample ``i`` is paired with sample ``i + P`` (with the paper's minibatch of two patches
    that is the one pair). Per pair: the density loss on labeled samples, BCE on both
    samples' classifier logits and on the latent mix of their phi and labels.

    Args:
        model: the CSRNet; ``classifier``: its :class:`DomainClassifier` (holds the GRL).
        images: normalised ``(B, 3, H, W)``, ``B`` even.
        density_targets: ``(B, 1, ceil(H/8), ceil(W/8))``; unlabeled rows are ignored.
        labeled: ``(B,)`` bool, True = labeled (distribution label 0), False = unlabeled (1).
        generator: ``numpy.random.Generator`` or ``torch.Generator`` for the MixUp weights.
        beta: weight of ``L_dc`` (3 in the paper). ``alpha``: Beta parameter (0.5).
        use_mixup: False gives the "GRL only" ablation (no mixed term, no draw).
    """
    batch = images.shape[0] if images.ndim == 4 else 0
    if batch < 2 or batch % 2:
        raise ValueError(f"images must be a (B, 3, H, W) batch with B even and >= 2, got shape {tuple(images.shape)}")
    if labeled.shape != (batch,) or labeled.dtype != torch.bool:
        raise ValueError(f"labeled must be a ({batch},) bool tensor, got {labeled.dtype} {tuple(labeled.shape)}")
    phi = model.features(images)
    density = model.density_head(phi)
    regression = density_regression_loss(density, density_targets, labeled)

    domain_labels = torch.where(labeled, LABELED, UNLABELED).to(phi.dtype)
    logits = classifier(phi)
    pairs = batch // 2
    per_sample = F.binary_cross_entropy_with_logits(logits, domain_labels, reduction="none")
    # Mean over pairs of (BCE(a) + BCE(b)) = 2 * mean over samples.
    individual = per_sample.mean() * 2.0
    if use_mixup:
        weights = sample_mixup_weights(generator, count=pairs, alpha=alpha).to(phi.device)
        mix = latent_mixup(phi[:pairs], phi[pairs:], domain_labels[:pairs], domain_labels[pairs:], weights)
        mixed = domain_classification_loss(classifier(mix.features), mix.labels)
    else:
        weights = torch.zeros(0)
        mixed = logits.sum() * 0.0
    domain = individual + mixed
    total = regression + float(beta) * domain
    return AlignmentLoss(
        total=total,
        regression=regression,
        domain=domain,
        domain_individual=individual,
        domain_mixed=mixed,
        mixup_weights=weights,
    )
