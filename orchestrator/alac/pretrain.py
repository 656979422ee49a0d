"""The label-free start of AL-AC's CSRNet (``model.start: self_supervised``).

Without ImageNet weights (offline machines, other domains), the front end is pretrained on the
pool's own images, which an active learner has (unlabeled) from the start, with a pretext task
and Adam (``model.self_supervised``): ``rotation`` prediction (:mod:`models.pretext`, as CSS-CCNN's
stage 1) or ``zoom`` (which of four zooms a view is: a square of 1, 1.25, 1.5 or 2 crop sides
around one centre, resized to the crop; head sizes tell the zoom). The result depends only on
(dataset, train split, width, init, seed, settings), so it is computed once into the sweep's
cache (:mod:`orchestrator.core.cache`) and every strategy, trial and cycle with that key starts
from the same front end: the sweep runs the distinct pretrainings as Ray tasks before the
trials; a trial run on its own computes its entry when missing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models import CSRNet, RotationHead, rotated_views
from orchestrator.config import ExperimentConfig
from orchestrator.core.cache import cached
from orchestrator.core.finite import check_finite_loss, loss_context
from orchestrator.core.samples import load_sample, open_split
from orchestrator.core.tensors import from_bytes, to_bytes

KIND = "pretrain_csrnet_frontend"
PURPOSE_PRETRAIN = 21
#: Bump when the pretraining code changes what it computes, so old cache entries are not reused.
VERSION = 1


def pretrain_key(config: ExperimentConfig) -> dict:
    """Everything the pretrained front end depends on."""
    dataset = dataclasses.asdict(config.dataset)
    dataset.pop("limit_test"), dataset.pop("test_split")
    return {"version": VERSION, "dataset": dataset, "width": config.model.width, "init": config.model.resolved_init,
            "seed": config.seed, "settings": dataclasses.asdict(config.model.self_supervised)}


def _pool_images(config: ExperimentConfig, crop: int) -> list[np.ndarray]:
    """The train split's images (uint8 RGB); a shorter side below ``crop`` is upscaled to it."""
    images = []
    for item in open_split(config.dataset, config.dataset.train_split):
        image = load_sample(item, config.dataset, with_density=False).image
        h, w = image.shape[:2]
        if min(h, w) < crop:
            scale = crop / min(h, w)
            image = cv2.resize(image, (max(crop, round(w * scale)), max(crop, round(h * scale))),
                               interpolation=cv2.INTER_LINEAR)
        images.append(image)
    return images


#: The zoom pretext's classes: a square of these multiples of ``crop`` around one centre, each
#: resized to ``crop`` (so head sizes tell the zoom).
ZOOMS = (1.0, 1.25, 1.5, 2.0)


def _zoom_views(images: list[np.ndarray], crops: int, crop: int,
                rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``crops`` random centres, each seen at the :data:`ZOOMS` (zoom-major) -> views, labels."""
    per_zoom: list[list[torch.Tensor]] = [[] for _ in ZOOMS]
    for _ in range(crops):
        image = images[int(rng.integers(len(images)))]
        h, w = image.shape[:2]
        largest = int(crop * ZOOMS[-1])
        cy, cx = int(rng.integers(largest // 2, h - largest // 2 + 1)), int(rng.integers(largest // 2, w - largest // 2 + 1))
        flip = rng.random() < 0.5
        for z, zoom in enumerate(ZOOMS):
            side = int(crop * zoom)
            view = image[cy - side // 2:cy - side // 2 + side, cx - side // 2:cx - side // 2 + side]
            view = CSRNet.normalize(np.ascontiguousarray(view[:, ::-1] if flip else view))
            per_zoom[z].append(F.interpolate(view, size=(crop, crop), mode="bilinear", align_corners=False,
                                             antialias=True))
    labels = torch.arange(len(ZOOMS)).repeat_interleave(crops)
    return torch.cat([torch.cat(v) for v in per_zoom]), labels


def _task_batch(task: str, images: list[np.ndarray], crops: int, crop: int,
                rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if task == "zoom":
        return _zoom_views(images, crops, crop, rng)
    return rotated_views(_views(images, crops, crop, rng))


def pretraining_context(config: ExperimentConfig, step: int, lr: float) -> tuple[str, str, str]:
    """Where a diverged pretraining failed, outermost first: the stage (shared by every trial
    of that experiment and seed, so no trial id), its step and the learning rate."""
    ssl = config.model.self_supervised
    return (f"stage pretraining ({ssl.task} pretext, the label-free start of experiment {config.experiment}, "
            f"seed {config.seed})", f"step {step}/{ssl.steps}", f"learning rate {lr:g}")


def _views(images: list[np.ndarray], crops: int, crop: int, rng: np.random.Generator) -> torch.Tensor:
    views = []
    for _ in range(crops):
        image = images[int(rng.integers(len(images)))]
        h, w = image.shape[:2]
        top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        view = image[top:top + crop, left:left + crop]
        if rng.random() < 0.5:
            view = view[:, ::-1]
        views.append(CSRNet.normalize(np.ascontiguousarray(view)))
    return torch.cat(views)


def pretrain_frontend(config: ExperimentConfig, log: Callable[[str], None] = print) -> bytes:
    """Train the front end of the config's seeded CSRNet on its pretext task; returns its
    ``frontend`` state dict as bytes (the back end keeps the trial's own initialisation)."""
    ssl = config.model.self_supervised
    torch.set_num_threads(max(1, config.ray.torch_threads))
    generator = torch.Generator().manual_seed(config.seed)
    net = CSRNet(width=config.model.width, generator=generator, init=config.model.resolved_init)
    head = RotationHead(net.frontend[-2].out_channels, generator=generator)
    optimizer = torch.optim.Adam(list(net.frontend.parameters()) + list(head.parameters()), lr=ssl.lr)
    rng = np.random.default_rng([config.seed, PURPOSE_PRETRAIN])
    images = _pool_images(config, int(ssl.crop * ZOOMS[-1]) if ssl.task == "zoom" else ssl.crop)
    started, recent = time.perf_counter(), []
    net.train()
    for step in range(1, ssl.steps + 1):
        views, labels = _task_batch(ssl.task, images, ssl.crops, ssl.crop, rng)
        logits = head(net.frontend(views))
        loss = F.cross_entropy(logits, labels)
        with loss_context(*pretraining_context(config, step, optimizer.param_groups[0]["lr"])):
            check_finite_loss(float(loss.detach()), what=f"the {ssl.task} pretext loss")  # one host read per step
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        recent.append(float((logits.detach().argmax(1) == labels).float().mean()))
        if step % max(1, ssl.steps // 4) == 0 or step == ssl.steps:
            log(f"  {ssl.task} pretraining step {step}/{ssl.steps}: accuracy {np.mean(recent):.2f} over the last "
                f"{len(recent)} steps ({time.perf_counter() - started:.0f} s)")
            recent = []
    return to_bytes({k: v.detach().clone() for k, v in net.frontend.state_dict().items()})


def pretrained_frontend(config: ExperimentConfig, cache_dir: str | Path,
                        log: Callable[[str], None] = print) -> tuple[dict, bool]:
    """``(frontend state dict, hit)`` for the config, from the cache or computed into it."""
    value, hit = cached(cache_dir, KIND, pretrain_key(config), lambda: pretrain_frontend(config, log), log=log)
    return from_bytes(value), hit


def pretrain_ahead(configs: list[ExperimentConfig], cache_dir: str | Path) -> int:
    """Compute the distinct pretrainings the given trial configs need, as parallel Ray tasks
    (one CPU each, ``ray.torch_threads`` threads), before the trials start; returns how many
    keys there were. Entries already cached cost nothing."""
    from orchestrator.core.execution import ensure_ray

    needed = {}
    for config in configs:
        if config.method == "alac" and config.model.resolved_start == "self_supervised":
            needed.setdefault(str(pretrain_key(config)), config)
    if not needed:
        return 0
    ray = ensure_ray()
    task = ray.remote(num_cpus=1)(pretrained_frontend)
    ray.get([task.remote(config, str(cache_dir), print) for config in needed.values()])
    return len(needed)
