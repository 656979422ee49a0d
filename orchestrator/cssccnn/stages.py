"""One CSS-CCNN training stage, written once and run two ways: in-process (``world_size = 1``)
or on every Ray Train worker (:func:`orchestrator.core.execution.run_loop` with
``run_stage``).

Kinds of stage (:attr:`StageJob.kind`):

* ``"rotation"`` — stage 1: random crops, the centre half rotated by 0/90/180/270 degrees,
  cross entropy on the rotation head; validation = rotation accuracy on the held-out images'
  centres (all four rotations); the epoch with the best accuracy is chosen.
* ``"sinkhorn"`` — stage 2: feature extractor frozen (weights and BatchNorm statistics), the
  density head trained with ``loss_scale x Sinkhorn(predicted cell counts, fresh prior
  samples)`` (CSS-CCNN) or the sparse/dense split loss (CSS-CCNN++); label-free validation
  against a fixed set of prior samples (see :mod:`orchestrator.cssccnn.losses`) and the
  moving-average rules of :mod:`orchestrator.cssccnn.epochs`. With ``labeled_ids`` (limited data)
  ``labeled_ratio`` of every ``labeled_ratio + 1`` steps take crops of the labeled images and
  match their cell counts to the ground-truth cell counts instead of prior samples.
* ``"supervised"`` — the labeled baselines: pixel-wise regression (eq. 4 of AL-AC, the
  project's regression loss) on the labeled images' 1/8 density; validation = MAE on the
  held-out train images (labels of train images only, never the test split).

Data parallelism is explicit, as in :mod:`orchestrator.alac.train`: every worker draws the same
seeded crop plan, takes batches ``rank::world_size`` and averages gradients with one flattened
all-reduce per step; validation views are split over ranks and their sums all-reduced, so every
rank takes the same selection and stopping decisions. Randomness comes from
``(seed, epoch, purpose, step)`` only, so a stage resumed from its epoch checkpoint trains
exactly as an uninterrupted one.

A diverging stage (NaN/inf summed loss, predicted cell counts or validation value) stops with
:class:`~orchestrator.core.finite.NonFiniteLoss` naming the epoch and the learning rate.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import torch

from models import CSSCCNN
from orchestrator.config import CSSConfig, DatasetConfig, StageConfig
from orchestrator.core import progress
from orchestrator.core.files import save_torch_atomic
from orchestrator.core.finite import check_finite_loss, epoch_context, loss_context
from orchestrator.core.samples import load_sample, open_split
from orchestrator.core.skeleton import InjectedFailure
from orchestrator.core.tensors import average_gradients, build_optimizer, cpu_state_bytes, from_bytes, to_bytes
from orchestrator.cssccnn.crops import fit_min_side, plan_crops
from orchestrator.cssccnn.epochs import MovingAverageSelector, PlusPlusSelector
from orchestrator.cssccnn.losses import StageLosses, batch_crops
from orchestrator.data import density_map, get_spec
from ot.prior import PowerLawPrior

KINDS = ("rotation", "sinkhorn", "supervised")
PURPOSE_PLAN, PURPOSE_PRIOR, PURPOSE_LABELED = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class PreparedImage:
    """An image ready for cropping: ``image`` ``(H, W, 3) uint8`` with ``min(H, W) >= crop``,
    ``density`` ``(H, W) float32`` count-exact or ``None``, ``count`` = annotated points."""

    id: str
    image: np.ndarray
    density: np.ndarray | None
    count: int


def load_prepared(dataset: DatasetConfig, split: str, ids: list[str], min_side: int,
                  with_density: bool) -> list[PreparedImage]:
    """Load ``ids`` of ``split`` at ``dataset.max_side``, upscaled to ``min_side`` when smaller
    (points scaled alike, so a density made here still sums to the count)."""
    opened = open_split(dataset, split)
    prepared = []
    for item_id in ids:
        sample = load_sample(opened.by_id(item_id), dataset, with_density=False)
        image = fit_min_side(sample.image, min_side)
        density = None
        if with_density:
            (h, w), (new_h, new_w) = sample.image.shape[:2], image.shape[:2]
            points = sample.points * [new_w / w, new_h / h]
            density = density_map(points, (new_h, new_w), get_spec(dataset.name).density).astype(np.float32)
        prepared.append(PreparedImage(item_id, image, density, sample.count))
    return prepared


@dataclasses.dataclass
class StageJob:
    """Everything one stage needs; pickles (it travels to Ray Train workers).

    ``model_state`` is ``torch.save`` bytes of a whole :class:`models.CSSCCNN` state; ``resume``
    the bytes of a :class:`LoopState` to continue from (``None`` = start at epoch 1);
    ``progress_path`` where rank 0 writes ``{"key": progress_key, "state": LoopState bytes}``
    after every ``checkpoint_every`` epochs (and the last).
    """

    kind: str
    dataset: DatasetConfig
    css: CSSConfig
    width: float
    seed: int
    train_ids: list[str]
    holdout_ids: list[str]
    labeled_ids: list[str]
    model_state: bytes
    freeze_features: bool
    schedule: StageConfig  # epochs, batch and the SGD settings of this stage
    prior: PowerLawPrior | None = None
    resume: bytes | None = None
    progress_path: str | None = None
    progress_key: str = ""
    fail_after_epoch: int | None = None
    torch_threads: int = 1

    @property
    def epochs(self) -> int:
        return self.schedule.epochs

    @property
    def batch(self) -> int:
        return self.schedule.batch

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "sinkhorn" and self.prior is None:
            raise ValueError("a sinkhorn stage needs a prior")


@dataclasses.dataclass
class LoopState:
    """A stage between two epochs (everything needed to continue bit-identically)."""

    next_epoch: int
    model_state: bytes
    optimizer_state: bytes
    selector: dict
    slot_states: dict[str, bytes]
    history: list[dict]
    start_validation: dict
    steps: int
    loss_sum: float
    seconds: float


@dataclasses.dataclass
class StageResult:
    """What a stage returns: the chosen epoch's network (``model_state``), the last epoch's
    (``final_state``), and the validation record (``history``: one dict per epoch)."""

    model_state: bytes
    final_state: bytes
    chosen_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[dict]
    start_validation: dict
    chosen_validation: dict
    steps: int
    mean_loss: float
    seconds: float


def _selector(job: StageJob):
    css, start = job.css, None
    if job.kind == "rotation":
        return MovingAverageSelector(window=1, patience=None, start=1)
    if job.kind == "supervised":
        return MovingAverageSelector(window=1, patience=css.patience, start=1)
    if css.plus_plus:
        start = min(css.plus_plus_moving_average, job.epochs)
        patience = css.patience if css.plus_plus_patience is None else css.plus_plus_patience
        return PlusPlusSelector(window=css.plus_plus_moving_average, patience=patience, start=start,
                                dense_weight=css.dense_weight, divergence=css.plus_plus_divergence)
    start = min(css.moving_average, job.epochs)
    return MovingAverageSelector(window=css.moving_average, patience=css.patience, start=start)


def _update_selector(selector, job: StageJob, epoch: int, validation: dict) -> list[str]:
    if job.kind == "rotation":
        return selector.update(epoch, -validation["rotation_accuracy"])
    if job.kind == "supervised":
        return selector.update(epoch, validation["mae"])
    if isinstance(selector, PlusPlusSelector):
        return selector.update(epoch, validation["sparse"], validation["dense"])
    return selector.update(epoch, validation["sinkhorn"])


def _save_progress(job: StageJob, state: LoopState) -> None:
    save_torch_atomic({"key": job.progress_key, "state": to_bytes(dataclasses.asdict(state))}, job.progress_path)


def load_progress(path: str | Path, key: str) -> bytes | None:
    """The :class:`LoopState` bytes saved at ``path`` when they belong to ``key``, else ``None``."""
    path = Path(path)
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved["state"] if saved.get("key") == key else None


def _loop_state(data: bytes) -> LoopState:
    return LoopState(**torch.load(io.BytesIO(data), map_location="cpu", weights_only=False))


def build_model(job: StageJob, device: torch.device) -> CSSCCNN:
    model = CSSCCNN(width=job.width)
    model.load_state_dict(from_bytes(job.model_state))
    if job.freeze_features:
        model.freeze_features()
    return model.to(device).train()


@dataclasses.dataclass
class _StageData:
    """A stage's prepared images: the train crops' sources, the held-out part, the labeled ones."""

    train: list
    holdout: list
    labeled: list


def _stage_data(job: StageJob) -> _StageData:
    css, split, supervised = job.css, job.dataset.train_split, job.kind == "supervised"
    train = load_prepared(job.dataset, split, job.train_ids, css.crop, supervised)
    holdout = load_prepared(job.dataset, split, job.holdout_ids, css.crop, supervised)
    labeled = []
    if job.kind == "sinkhorn" and job.labeled_ids:
        labeled = load_prepared(job.dataset, split, job.labeled_ids, css.crop, True)
    return _StageData(train, holdout, labeled)


def _train_epoch(job: StageJob, epoch: int, data: _StageData, model, optimizer, losses, params,
                 rank: int, world_size: int) -> tuple[float, int]:
    """One epoch of this rank's share of the steps; returns (loss sum, steps)."""
    css = job.css
    steps_total = job.schedule.steps_per_epoch or css.steps_per_epoch or max(1, len(data.train) // job.batch)
    usable = steps_total - steps_total % world_size
    sizes = [p.image.shape[:2] for p in data.train]
    labeled_sizes = [p.image.shape[:2] for p in data.labeled]
    rng = np.random.default_rng([job.seed, epoch, PURPOSE_PLAN])
    plan = plan_crops(sizes, css.crop, usable * job.batch, rng, flip=True, rotations=job.kind == "rotation")
    epoch_loss, epoch_steps = torch.zeros((), dtype=torch.float64, device=losses.device), 0  # summed on the device
    for step in range(rank, usable, world_size):
        labeled_step = bool(data.labeled) and step % (css.labeled_ratio + 1) != css.labeled_ratio
        if labeled_step:
            step_rng = np.random.default_rng([job.seed, epoch, PURPOSE_LABELED, step])
            specs = plan_crops(labeled_sizes, css.crop, job.batch, step_rng, flip=True)
            images, densities = batch_crops(data.labeled, specs, css.crop, with_density=True)
        else:
            specs = plan[step * job.batch:(step + 1) * job.batch]
            images, densities = batch_crops(data.train, specs, css.crop, with_density=job.kind == "supervised")
        optimizer.zero_grad(set_to_none=True)
        prior_rng = np.random.default_rng([job.seed, epoch, PURPOSE_PRIOR, step])
        loss = losses.train_loss(images, densities, specs, prior_rng, labeled_step)
        loss.backward()
        average_gradients(params, world_size)
        optimizer.step()
        epoch_loss += loss.detach().double()
        epoch_steps += 1
    return float(epoch_loss), epoch_steps  # one read per epoch


def _checked_epoch(job: StageJob, epoch: int, data: _StageData, model, optimizer, losses, params, rank: int,
                   world_size: int) -> tuple[float, int, dict]:
    """One epoch's training (loss sum, steps) and validation (dict of floats). A NaN/inf summed
    loss, predicted cell count or validation value raises
    :class:`~orchestrator.core.finite.NonFiniteLoss` naming the epoch and the learning rate; the
    checks look at numbers already read on the host."""
    with loss_context(*epoch_context(epoch, optimizer.param_groups[0]["lr"])):
        epoch_loss, epoch_steps = _train_epoch(job, epoch, data, model, optimizer, losses, params, rank, world_size)
        check_finite_loss(epoch_loss)
        validation = losses.validate(rank, world_size)
        for key, value in validation.items():
            check_finite_loss(value, what=f"the validation {key}")
    return epoch_loss, epoch_steps, validation


def run_stage(job: StageJob, rank: int = 0, world_size: int = 1, device: str | torch.device = "cpu") -> StageResult:
    """Train ``job.epochs`` epochs (or until the selection rule stops) on this worker's share of
    the batches; returns the chosen epoch's network. All ranks hold identical weights."""
    started = time.perf_counter()
    torch.set_num_threads(max(1, job.torch_threads))
    device = torch.device(device)
    model = build_model(job, device)
    params = [p for p in model.parameters() if p.requires_grad]
    sgd = job.schedule
    optimizer = build_optimizer(params, sgd.optimizer, sgd.lr, sgd.momentum, sgd.weight_decay)
    data = _stage_data(job)
    losses = StageLosses(job, model, data.holdout, device)
    selector = _selector(job)
    if job.resume is not None:
        state = _loop_state(job.resume)
        model.load_state_dict(from_bytes(state.model_state))
        optimizer.load_state_dict(from_bytes(state.optimizer_state))
        for key, value in state.selector.items():
            setattr(selector, key, copy.deepcopy(value))
        seconds_before = state.seconds
    else:
        start_validation = losses.validate(rank, world_size) if job.kind != "rotation" else {}
        state = LoopState(1, b"", b"", {}, {}, [], start_validation, 0, 0.0, 0.0)
        seconds_before = 0.0

    epoch = state.next_epoch - 1
    last_epoch = epoch if selector.stopped else job.epochs  # a stopped stage resumed: nothing left
    with progress.bar(f"{job.kind} epochs", job.epochs, unit="epoch", done=epoch) as shown:  # drawn only if a CLI enabled it here
        for epoch in range(state.next_epoch, last_epoch + 1):
            epoch_loss, epoch_steps, validation = _checked_epoch(job, epoch, data, model, optimizer, losses, params,
                                                                 rank, world_size)
            current = cpu_state_bytes(model)
            for slot in _update_selector(selector, job, epoch, validation):
                state.slot_states[slot] = current
            state.history.append({"epoch": epoch, "train_loss": epoch_loss / max(epoch_steps, 1), **validation})
            state.steps += epoch_steps
            state.loss_sum += epoch_loss
            state.next_epoch = epoch + 1
            last = selector.stopped or epoch == job.epochs
            if rank == 0 and job.progress_path and (epoch % max(1, job.css.checkpoint_every) == 0 or last):
                state.model_state, state.optimizer_state = current, to_bytes(optimizer.state_dict())
                state.selector = selector.state_dict()
                state.seconds = seconds_before + time.perf_counter() - started
                _save_progress(job, state)
            if job.fail_after_epoch == epoch:
                raise InjectedFailure(f"injected failure after epoch {epoch}")
            shown.advance()
            if selector.stopped:
                break
    return _stage_result(model, selector, state, epoch, job, seconds_before + time.perf_counter() - started)


def _stage_result(model, selector, state: LoopState, epoch: int, job: StageJob, seconds: float) -> StageResult:
    final_state = cpu_state_bytes(model)
    chosen_epoch = selector.final_epoch
    chosen = state.slot_states.get(selector.chosen_slot, final_state)
    chosen_validation = state.history[chosen_epoch - 1] if chosen_epoch >= 1 else {}
    return StageResult(
        model_state=chosen, final_state=final_state, chosen_epoch=chosen_epoch,
        epochs_run=len(state.history), stopped_early=bool(selector.stopped) and epoch < job.epochs,
        history=state.history, start_validation=state.start_validation, chosen_validation=chosen_validation,
        steps=state.steps, mean_loss=state.loss_sum / max(state.steps, 1), seconds=seconds,
    )
