"""One AL-AC training phase (one cycle), written once and run two ways: in-process
(``world_size = 1``) or on every Ray Train worker (see :mod:`orchestrator.ray_train`).

Data parallelism is explicit: every worker draws the same seeded patch plan, takes its share of
the minibatches (``pairs[rank::world_size]``), and gradients are averaged with one flattened
all-reduce per step. That keeps the loss code free to call ``model.features`` and the heads
separately (which a DistributedDataParallel wrapper would not see), works with gloo on CPU and
NCCL on GPU, and makes one worker bit-identical to the in-process loop.

All randomness (patches, flips, pairing, MixUp draws) comes from ``seed``; nothing depends on
global RNG state, so a resumed trial trains exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable

import numpy as np
import torch

from models import CSRNet, DomainClassifier, alignment_loss, density_regression_loss
from orchestrator.config import ALConfig, DatasetConfig, TrainConfig
from orchestrator.data import block_sum
from orchestrator.data.patches import extract_patch, pair_patches, plan_patches
from orchestrator.samples import Sample, load_sample, open_split


@dataclasses.dataclass
class TrainJob:
    """Everything one training phase needs; pickles (it travels to Ray Train workers).

    ``model_state`` etc. are serialised ``torch.save`` bytes so that the job is one plain
    object; ``None`` means "fresh" (new optimiser / new classifier)."""

    dataset: DatasetConfig
    labeled_ids: list[str]
    unlabeled_ids: list[str]
    alignment: bool
    width: float
    train: TrainConfig
    alac: ALConfig
    seed: int
    model_state: bytes
    optimizer_state: bytes | None = None
    classifier_state: bytes | None = None
    classifier_optimizer_state: bytes | None = None
    torch_threads: int = 1


@dataclasses.dataclass
class TrainResult:
    model_state: bytes
    optimizer_state: bytes
    classifier_state: bytes | None
    classifier_optimizer_state: bytes | None
    steps: int
    mean_loss: float
    seconds: float


def to_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def load_train_samples(dataset: DatasetConfig, ids: list[str], with_density: bool) -> list[Sample]:
    """Load the given ids of the train split (in the given order)."""
    split = open_split(dataset, dataset.train_split)
    return [load_sample(split.by_id(i), dataset, with_density) for i in ids]


def _sgd(params, cfg: TrainConfig) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce and average the gradients of ``params`` in one flattened message."""
    if world_size == 1:
        return
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p)
        offset += n


def _batch(samples: list[Sample], pair, labeled_mask: list[bool], device) -> tuple:
    images, targets = [], []
    for spec in pair:
        sample = samples[spec.image_index]
        density = sample.density if sample.density is not None else np.zeros(sample.image.shape[:2], np.float32)
        img, den = extract_patch(sample.image, density, spec)
        images.append(CSRNet.normalize(img))
        targets.append(torch.from_numpy(block_sum(den, 8)))
    labeled = torch.tensor([labeled_mask[s.image_index] for s in pair], dtype=torch.bool)
    return (torch.cat(images).to(device), torch.stack(targets).unsqueeze(1).to(device), labeled.to(device))


def run_training(job: TrainJob, rank: int = 0, world_size: int = 1, device: str | torch.device = "cpu",
                 progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``job.train.epochs`` epochs on this worker's share of the minibatches.

    Per epoch: a seeded plan of quarter-size patches over the labeled images (and, with
    alignment, as many over the unlabeled images), paired into minibatches of two. Without
    alignment the loss is eq. 4; with it, eq. 5 (regression on labeled patches + beta x the
    distribution-classification loss with latent MixUp). Returns the states of rank 0's copy
    (all ranks hold identical weights after every step).
    """
    started = time.perf_counter()
    torch.set_num_threads(max(1, job.torch_threads))
    device = torch.device(device)
    model = CSRNet(width=job.width)
    model.load_state_dict(from_bytes(job.model_state))
    model.to(device).train()
    optimizer = _sgd(model.parameters(), job.train)
    if job.optimizer_state is not None:
        optimizer.load_state_dict(from_bytes(job.optimizer_state))
    params = list(model.parameters())

    classifier = cls_optimizer = None
    labeled = load_train_samples(job.dataset, job.labeled_ids, with_density=True)
    samples, mask = list(labeled), [True] * len(labeled)
    if job.alignment:
        classifier = DomainClassifier(model.feature_channels, grl_multiplier=job.alac.grl_multiplier,
                                      generator=torch.Generator().manual_seed(job.seed))
        if job.classifier_state is not None:
            classifier.load_state_dict(from_bytes(job.classifier_state))
        classifier.to(device).train()
        cls_optimizer = _sgd(classifier.parameters(), job.train)
        if job.classifier_optimizer_state is not None:
            cls_optimizer.load_state_dict(from_bytes(job.classifier_optimizer_state))
        params += list(classifier.parameters())
        unlabeled = load_train_samples(job.dataset, job.unlabeled_ids, with_density=False)
        samples += unlabeled
        mask += [False] * len(unlabeled)

    sizes = [s.image.shape[:2] for s in samples]
    steps, loss_sum = 0, 0.0
    for epoch in range(job.train.epochs):
        rng = np.random.default_rng([job.seed, epoch])
        specs = plan_patches(sizes[:len(labeled)], rng, reference_total=job.train.reference_total)
        if job.alignment and len(samples) > len(labeled):
            extra = plan_patches(sizes[len(labeled):], rng, reference_total=job.train.reference_total)
            specs += [dataclasses.replace(s, image_index=s.image_index + len(labeled)) for s in extra]
            specs = [specs[i] for i in rng.permutation(len(specs))]
        pairs = pair_patches(specs, rng)
        usable = len(pairs) - len(pairs) % world_size  # every rank takes the same number of steps
        if job.train.max_steps_per_epoch is not None:
            usable = min(usable, job.train.max_steps_per_epoch * world_size)
        mixup_rng = np.random.default_rng([job.seed, epoch, 1])
        for index in range(rank, usable, world_size):
            images, targets, labeled_mask = _batch(samples, pairs[index], mask, device)
            optimizer.zero_grad(set_to_none=True)
            if classifier is not None:
                cls_optimizer.zero_grad(set_to_none=True)
                loss = alignment_loss(model, classifier, images, targets, labeled_mask, mixup_rng,
                                      beta=job.alac.beta, alpha=job.alac.mixup_alpha,
                                      use_mixup=job.alac.mixup).total
            else:
                loss = density_regression_loss(model(images), targets)
            loss.backward()
            _average_gradients(params, world_size)
            optimizer.step()
            if cls_optimizer is not None:
                cls_optimizer.step()
            steps += 1
            loss_sum += float(loss.detach())
        if progress is not None:
            progress({"epoch": epoch + 1, "steps": steps, "mean_loss": loss_sum / max(steps, 1)})

    model.cpu()
    return TrainResult(
        model_state=to_bytes(model.state_dict()),
        optimizer_state=to_bytes(optimizer.state_dict()),
        classifier_state=to_bytes(classifier.cpu().state_dict()) if classifier is not None else None,
        classifier_optimizer_state=to_bytes(cls_optimizer.state_dict()) if cls_optimizer is not None else None,
        steps=steps,
        mean_loss=loss_sum / max(steps, 1),
        seconds=time.perf_counter() - started,
    )
