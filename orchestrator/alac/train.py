"""One AL-AC training phase (one cycle), written once and run two ways: in-process
(``world_size = 1``) or on every Ray Train worker (see :func:`orchestrator.core.execution.run_loop`).

Data parallelism is explicit: every worker draws the same seeded patch plan, takes its share of
the minibatches (``batches[rank::world_size]``), and gradients are averaged with one flattened
all-reduce per step. That keeps the loss code free to call ``model.features`` and the heads
separately (which a DistributedDataParallel wrapper would not see), works with gloo on CPU and
NCCL on GPU, and makes one worker bit-identical to the in-process loop.

All randomness (patches, flips, pairing, MixUp draws) comes from ``seed``; nothing depends on
global RNG state, so a resumed trial trains exactly as an uninterrupted one.

On CUDA the patches are built on the CPU in pinned memory and copied without blocking (the next
minibatch is cut while the GPU runs the current step), the loss is summed on the device and read
once per epoch, and ``amp`` runs the forward and loss under bfloat16 autocast. On the CPU every
number is what it was before (float32, the same summation order).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from models import CSRNet, DomainClassifier, alignment_loss, density_regression_loss
from orchestrator.config import ALConfig, DatasetConfig, TrainConfig
from orchestrator.core.execution import to_device
from orchestrator.core.finite import check_finite_loss
from orchestrator.core.samples import Sample, load_sample, open_split
from orchestrator.core.tensors import average_gradients, build_optimizer, from_bytes, to_bytes
from orchestrator.data import block_sum
from orchestrator.data.patches import extract_patch, group_pairs, pair_patches, plan_patches


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
    amp: bool = False  # bfloat16 autocast of forward + loss on CUDA (ray.amp; ignored on the CPU)


@dataclasses.dataclass
class TrainResult:
    model_state: bytes
    optimizer_state: bytes
    classifier_state: bytes | None
    classifier_optimizer_state: bytes | None
    steps: int
    mean_loss: float
    seconds: float


def load_train_samples(dataset: DatasetConfig, ids: list[str], with_density: bool) -> list[Sample]:
    """Load the given ids of the train split (in the given order)."""
    split = open_split(dataset, dataset.train_split)
    return [load_sample(split.by_id(i), dataset, with_density) for i in ids]


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``params``: SGD with momentum (the paper's) or Adam."""
    return build_optimizer(params, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)


def _batch(samples: list[Sample], specs, labeled_mask: list[bool], device: torch.device) -> tuple:
    """One minibatch (normalised images, 1/8 density targets, labeled mask) from its patch specs."""
    images, targets = [], []
    for spec in specs:
        sample = samples[spec.image_index]
        density = sample.density if sample.density is not None else np.zeros(sample.image.shape[:2], np.float32)
        img, den = extract_patch(sample.image, density, spec)
        images.append(CSRNet.normalize(img))
        targets.append(torch.from_numpy(block_sum(den, 8)))
    labeled = torch.tensor([labeled_mask[s.image_index] for s in specs], dtype=torch.bool)
    return (to_device(torch.cat(images), device), to_device(torch.stack(targets).unsqueeze(1), device),
            to_device(labeled, device))


@dataclasses.dataclass
class _Networks:
    """The regressor and (with alignment) the distribution classifier, with their optimisers."""

    model: CSRNet
    optimizer: torch.optim.Optimizer
    classifier: DomainClassifier | None = None
    classifier_optimizer: torch.optim.Optimizer | None = None

    @property
    def params(self) -> list[torch.nn.Parameter]:
        extra = list(self.classifier.parameters()) if self.classifier is not None else []
        return list(self.model.parameters()) + extra


def _networks(job: TrainJob, device: torch.device) -> _Networks:
    """The job's networks and optimisers, restored from its states where it carries them."""
    model = CSRNet(width=job.width)
    model.load_state_dict(from_bytes(job.model_state))
    model.to(device).train()
    nets = _Networks(model, make_optimizer(model.parameters(), job.train))
    if job.optimizer_state is not None:
        nets.optimizer.load_state_dict(from_bytes(job.optimizer_state))
    if job.alignment:
        nets.classifier = DomainClassifier(model.feature_channels, grl_multiplier=job.alac.grl_multiplier,
                                           generator=torch.Generator().manual_seed(job.seed))
        if job.classifier_state is not None:
            nets.classifier.load_state_dict(from_bytes(job.classifier_state))
        nets.classifier.to(device).train()
        nets.classifier_optimizer = make_optimizer(nets.classifier.parameters(), job.train)
        if job.classifier_optimizer_state is not None:
            nets.classifier_optimizer.load_state_dict(from_bytes(job.classifier_optimizer_state))
    return nets


def _epoch_batches(job: TrainJob, sizes: list, n_labeled: int, epoch: int, world_size: int) -> tuple[list, int]:
    """The epoch's seeded minibatches (``alac.train.pairs_per_step`` pairs of patch specs each,
    see :func:`group_pairs`) and how many every rank shares."""
    rng = np.random.default_rng([job.seed, epoch])
    cfg = job.train
    specs = plan_patches(sizes[:n_labeled], rng, reference_total=cfg.reference_total, side_fraction=cfg.patch_side)
    if job.alignment and len(sizes) > n_labeled:
        extra = plan_patches(sizes[n_labeled:], rng, reference_total=cfg.reference_total, side_fraction=cfg.patch_side)
        specs += [dataclasses.replace(s, image_index=s.image_index + n_labeled) for s in extra]
        specs = [specs[i] for i in rng.permutation(len(specs))]
    batches = group_pairs(pair_patches(specs, rng), cfg.pairs_per_step, rng)
    usable = len(batches) - len(batches) % world_size  # every rank takes the same number of steps
    if cfg.max_steps_per_epoch is not None:
        usable = min(usable, cfg.max_steps_per_epoch * world_size)
    return batches, usable


def autocast(device: torch.device, amp: bool):
    """bfloat16 autocast on CUDA when ``amp`` (no loss scaling needed: bfloat16 keeps float32's
    range); a disabled context otherwise, so the CPU path is plain float32."""
    enabled = amp and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """The learning rate of 0-based ``step`` of a cycle's ``total_steps``, as a fraction of
    ``alac.train.lr``: 1 throughout for ``constant``; ``cosine`` falls from 1 at step 0 along half
    a cosine towards 0 at ``total_steps``."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(total_steps, 1)))
    raise ValueError(f"unknown lr schedule {schedule!r}")


def _set_lr(nets: _Networks, cfg: TrainConfig, step: int, total_steps: int) -> None:
    """Both optimisers at this step's learning rate (a restored optimiser state carries the
    previous cycle's last rate; every cycle's schedule starts again at ``cfg.lr``)."""
    lr = cfg.lr * lr_factor(cfg.lr_schedule, step, total_steps)
    for optimizer in (nets.optimizer, nets.classifier_optimizer):
        for group in optimizer.param_groups if optimizer is not None else ():
            group["lr"] = lr


class WeightAverage:
    """An exponential moving average of a model's weights over one cycle's steps, decay
    ``ema_decay`` per step, bias-corrected as Adam's moments are (``average / (1 - decay**t)``),
    so the cycle's start weights carry no weight and a short cycle is still averaged at its
    decay. The cycle returns the averaged weights; the optimiser's state stays the raw one's."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.average = [torch.zeros_like(p, dtype=torch.float32) for p in model.parameters()]

    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        with torch.no_grad():
            torch._foreach_lerp_(self.average, [p.detach().float() for p in model.parameters()], 1.0 - self.decay)

    def copy_to(self, model: torch.nn.Module) -> None:
        if self.updates == 0:
            return
        correction = 1.0 - self.decay ** self.updates
        with torch.no_grad():
            for target, value in zip(model.parameters(), self.average):
                target.copy_(value / correction)


def _step(job: TrainJob, nets: _Networks, batch: tuple, mixup_rng, world_size: int) -> torch.Tensor:
    """One optimisation step on one minibatch; returns its loss (detached, on the device: no sync)."""
    images, targets, labeled_mask = batch
    nets.optimizer.zero_grad(set_to_none=True)
    with autocast(images.device, job.amp):
        if nets.classifier is not None:
            nets.classifier_optimizer.zero_grad(set_to_none=True)
            loss = alignment_loss(nets.model, nets.classifier, images, targets, labeled_mask, mixup_rng,
                                  beta=job.alac.beta, alpha=job.alac.mixup_alpha, use_mixup=job.alac.mixup).total
        else:
            loss = density_regression_loss(nets.model(images), targets)
    loss.backward()
    average_gradients(nets.params, world_size)
    if job.train.grad_clip is not None:  # after averaging: every rank clips the same gradient
        torch.nn.utils.clip_grad_norm_(nets.params, job.train.grad_clip)
    nets.optimizer.step()
    if nets.classifier_optimizer is not None:
        nets.classifier_optimizer.step()
    return loss.detach()


def run_training(job: TrainJob, rank: int = 0, world_size: int = 1, device: str | torch.device = "cpu",
                 progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Train ``job.train.epochs`` epochs on this worker's share of the minibatches.

    Per epoch: a seeded plan of quarter-size patches over the labeled images (and, with
    alignment, as many over the unlabeled images), paired, ``pairs_per_step`` pairs per
    minibatch (1: the paper's minibatch of two), gradients clipped to ``grad_clip``, the learning
    rate following ``lr_schedule`` over the cycle's steps (see :func:`lr_factor`), and with
    ``ema_decay`` the cycle's model is the moving average of its weights (:class:`WeightAverage`). Without
    alignment the loss is eq. 4; with it, eq. 5 (regression on labeled patches + beta x the
    distribution-classification loss with latent MixUp). Returns the states of rank 0's copy
    (all ranks hold identical weights after every step).
    """
    started = time.perf_counter()
    torch.set_num_threads(max(1, job.torch_threads))
    device = torch.device(device)
    nets = _networks(job, device)
    samples = load_train_samples(job.dataset, job.labeled_ids, with_density=True)
    mask = [True] * len(samples)
    if job.alignment:
        unlabeled = load_train_samples(job.dataset, job.unlabeled_ids, with_density=False)
        samples, mask = samples + unlabeled, mask + [False] * len(unlabeled)
    sizes = [s.image.shape[:2] for s in samples]
    steps, loss_sum = 0, 0.0
    loss_total = torch.zeros((), dtype=torch.float64, device=device)  # float64 sum, as Python floats were
    plans = [_epoch_batches(job, sizes, mask.count(True), epoch, world_size) for epoch in range(job.train.epochs)]
    total_steps = sum(usable // world_size for _, usable in plans)
    average = WeightAverage(nets.model, job.train.ema_decay) if job.train.ema_decay is not None else None
    for epoch, (batches, usable) in enumerate(plans):
        mixup_rng = np.random.default_rng([job.seed, epoch, 1])
        for index in range(rank, usable, world_size):
            _set_lr(nets, job.train, steps, total_steps)
            loss_total += _step(job, nets, _batch(samples, batches[index], mask, device), mixup_rng, world_size).double()
            steps += 1
            if average is not None:
                average.update(nets.model)
        loss_sum = float(loss_total)  # one read per epoch
        check_finite_loss(loss_sum, epoch + 1, nets.optimizer.param_groups[0]["lr"])  # NaN/inf: NonFiniteLoss
        if progress is not None:
            progress({"epoch": epoch + 1, "steps": steps, "mean_loss": loss_sum / max(steps, 1)})
    if average is not None:
        average.copy_to(nets.model)
    classifier, cls_optimizer = nets.classifier, nets.classifier_optimizer
    return TrainResult(
        model_state=to_bytes(nets.model.cpu().state_dict()),
        optimizer_state=to_bytes(nets.optimizer.state_dict()),
        classifier_state=to_bytes(classifier.cpu().state_dict()) if classifier is not None else None,
        classifier_optimizer_state=to_bytes(cls_optimizer.state_dict()) if cls_optimizer is not None else None,
        steps=steps,
        mean_loss=loss_sum / max(steps, 1),
        seconds=time.perf_counter() - started,
    )
