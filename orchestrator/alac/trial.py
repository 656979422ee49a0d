"""One AL-AC trial: a setting and a seed -> cycles of train, evaluate, score the pool, select.

Cycle t (1-based) trains on the labeled set V_t (continuing from cycle t-1's weights and
optimiser), evaluates on the test split, and — unless it is the last cycle — scores the
unlabeled pool and selects the images labeled at cycle t+1. The last cycle may train with
distribution alignment (GRL classifier + latent MixUp over labeled and unlabeled patches).
``alac.strategy: rs_baseline`` is the paper's RS baseline instead: at each labeled-set size of
the schedule (m0, m0 + m, ..., M) one training from the initial weights on the first n images of
one random order drawn from the seed alone (the trial's first m0, then the rest of the pool), no
selection, no alignment (whatever ``alac.alignment`` says) and nothing carried between sizes, so
the row at n does not depend on m. Every row also carries the Mean baseline of its labeled images.

Reproducibility and resume: every random choice draws from a generator seeded by
``(seed, cycle, purpose)`` — the initial m0 images from ``seed`` alone, so every strategy with
the same seed starts from the same images — and nothing carries RNG state across cycles. After
each cycle the checkpoint (labeled ids with their cycles, model/optimiser/classifier states,
rows so far, the config) is written atomically by :class:`~orchestrator.core.skeleton.TrialRunner`;
a restarted trial continues at the next cycle and makes exactly the selections an
uninterrupted one makes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import numpy as np
import torch

from models import CSRNet
from orchestrator.alac.labels import LabelState
from orchestrator.alac.pretrain import pretrained_frontend
from orchestrator.alac.scoring import density_examples, score_ids
from orchestrator.alac.strategy import ONE_SHOT_RANDOM, select_batch
from orchestrator.alac.train import TrainJob, TrainResult, run_training
from orchestrator.alac.validate import validate_alac
from orchestrator.config import ExperimentConfig
from orchestrator.core import progress
from orchestrator.core.counting import mae_rmse
from orchestrator.core.execution import run_loop
from orchestrator.core.files import save_npz_atomic
from orchestrator.core.finite import loss_context, trial_context
from orchestrator.core.samples import load_sample
from orchestrator.core.seeds import derived_seed
from orchestrator.core.skeleton import InjectedFailure, TrialRunner
from orchestrator.core.tensors import to_bytes
from orchestrator.data import block_sum
from selection import grid_signature

__all__ = ["ALACTrial", "InjectedFailure", "PoolSelection", "cycle_sizes", "initial_model", "initial_selection",
           "labeled_evidence", "score_and_select", "train_job", "validate_alac"]

EXAMPLES = "examples.npz"
PURPOSE_INITIAL, PURPOSE_TRAIN, PURPOSE_SELECT, PURPOSE_ONE_SHOT = 0, 1, 2, 3
#: Pools up to this size keep every predicted count in the rows (for the partition figure).
MAX_COUNTS_IN_ROWS = 20_000
NO_SELECTION = {"partition_breaks": "[]", "pool_predicted_counts": "[]", "selected_partitions": "[]"}


def cycle_sizes(initial: int, per_cycle: int, budget: int) -> list[int]:
    """Labeled-set size at each cycle: m0, m0+m, ... up to M. When M - m0 is not a multiple of
    m the last selection takes only the remainder, so the trial ends at exactly M labeled."""
    sizes = [initial]
    while sizes[-1] < budget:
        sizes.append(min(budget, sizes[-1] + per_cycle))
    return sizes


def selection_summary(result, pool_counts: np.ndarray) -> dict:
    """JSON columns describing one selection, for reports (AL-AC Fig. 3)."""
    counts = [round(float(c), 3) for c in pool_counts] if len(pool_counts) <= MAX_COUNTS_IN_ROWS else []
    return {
        "partition_breaks": json.dumps([float(b) for b in result.partition_breaks]),
        "pool_predicted_counts": json.dumps(counts),
        "selected_partitions": json.dumps([int(p) for p in result.selected_partition]),
    }


def initial_model(config: ExperimentConfig, cache_dir: str | Path | None = None, log=print) -> tuple[CSRNet, str]:
    """The network a trial starts from, as ``model.start`` says, and how the label-free start
    was obtained (``"computed"``, ``"cached"``, or ``""`` for the other starts): a seeded
    initialisation (``model.resolved_init``), then the ImageNet VGG16 front end, the
    self-supervised front end (cached under ``cache_dir``) and/or whole-network weights."""
    from orchestrator.core.weights import load_vgg16_imagenet, load_weights_into

    model_cfg = config.model
    model = CSRNet(width=model_cfg.width, generator=torch.Generator().manual_seed(config.seed),
                   init=model_cfg.resolved_init)
    note = ""
    if model_cfg.resolved_start == "self_supervised":
        if cache_dir is None:
            raise ValueError("model.start self_supervised needs a cache folder for its pretraining")
        frontend, hit = pretrained_frontend(config, cache_dir, log=log)
        model.frontend.load_state_dict(frontend)
        note = "cached" if hit else "computed"
    if model_cfg.pretrained:
        load_vgg16_imagenet(model, model_cfg.pretrained)
    if model_cfg.weights:
        load_weights_into(model, model_cfg.weights)
    return model, note


def initial_selection(pool_ids: list[str], seed: int, m0: int) -> list[str]:
    """The first ``m0`` images of every trial with ``seed`` (and of an annotation project's first
    round): drawn uniformly without replacement from ``seed`` alone, returned in pool order."""
    rng = np.random.default_rng([seed, 0, PURPOSE_INITIAL])
    first = rng.choice(len(pool_ids), size=m0, replace=False)
    return [pool_ids[i] for i in sorted(first)]


def train_job(config: ExperimentConfig, dataset, labeled: list[str], unlabeled: list[str], alignment: bool,
              seed: int, start: tuple) -> TrainJob:
    """The training phase of one cycle on ``dataset``'s train split: ``labeled`` ids in labeling
    order, ``unlabeled`` ids (used only with ``alignment``), ``start`` = (model, optimiser,
    classifier, classifier optimiser) states (``None`` = fresh); ``ray.amp`` rides along."""
    return TrainJob(
        dataset=dataset, labeled_ids=labeled, unlabeled_ids=unlabeled if alignment else [], alignment=alignment,
        width=config.model.width, train=config.alac.train, alac=config.alac, seed=seed, model_state=start[0],
        optimizer_state=start[1], classifier_state=start[2], classifier_optimizer_state=start[3],
        torch_threads=config.ray.torch_threads, amp=config.ray.amp,
    )


def labeled_evidence(sample, levels: int) -> tuple[int, np.ndarray]:
    """Ground-truth count and grid signature (levels 0..LA) of a labeled image's 1/8-resolution
    density target (``sample`` loaded with its density)."""
    target = block_sum(sample.density.astype(np.float64), 8)
    return sample.count, grid_signature(target, levels)


@dataclasses.dataclass
class PoolSelection:
    """One cycle's selection: ``ids`` picked (pick order), the strategy's ``result`` (rows index
    the scored ``unlabeled`` ids), the pool ``scores`` (:class:`~orchestrator.alac.scoring.PoolScorer`
    outputs) and the scoring seconds."""

    ids: list[str]
    result: object
    scores: dict
    score_seconds: float


def score_and_select(config: ExperimentConfig, scorer_kwargs: dict, unlabeled: list[str], labeled_counts: np.ndarray,
                     labeled_signatures: np.ndarray, k: int, cycle: int) -> PoolSelection:
    """Score the ``unlabeled`` ids with the trained model (``scorer_kwargs`` of
    :class:`~orchestrator.alac.scoring.PoolScorer`) and pick ``k`` with ``config.alac.strategy``,
    drawing from ``(seed, cycle, PURPOSE_SELECT)``: the step the trials and annotation projects share.
    ``labeled_counts`` (L,) people, ``labeled_signatures`` (L, 4^0+..+4^LA)."""
    t = time.perf_counter()
    pool_scores = score_ids(scorer_kwargs, unlabeled, config.ray)
    score_s = time.perf_counter() - t
    rng = np.random.default_rng([config.seed, cycle, PURPOSE_SELECT])
    picked = select_batch(config.alac, pool_scores, labeled_counts, labeled_signatures, k, rng)
    return PoolSelection([unlabeled[int(i)] for i in picked.selected], picked, pool_scores, score_s)


@dataclasses.dataclass
class ALACState:
    """Everything an AL-AC trial carries from one cycle to the next."""

    labels: LabelState
    next_cycle: int
    model_state: bytes
    optimizer_state: bytes | None
    classifier_state: bytes | None
    classifier_optimizer_state: bytes | None
    rows: list[dict]
    pretraining: str = ""  # how the label-free start was obtained: "computed", "cached" or ""
    initial_model_state: bytes | None = None  # rs_baseline: every size trains from these weights

    def state_dict(self) -> dict:
        return {"labels": self.labels.state_dict(), "next_cycle": self.next_cycle,
                "model_state": self.model_state, "optimizer_state": self.optimizer_state,
                "classifier_state": self.classifier_state,
                "classifier_optimizer_state": self.classifier_optimizer_state, "rows": self.rows,
                "pretraining": self.pretraining, "initial_model_state": self.initial_model_state}

    def keep(self, result: TrainResult) -> None:
        """Carry a training phase's weights and optimisers into the next cycle."""
        self.model_state, self.optimizer_state = result.model_state, result.optimizer_state
        if result.classifier_state is not None:
            self.classifier_state = result.classifier_state
            self.classifier_optimizer_state = result.classifier_optimizer_state


class ALACTrial(TrialRunner):
    """Runs one AL-AC trial into ``out_dir`` (``checkpoint.pt``, ``rows.parquet``, and
    ``examples.npz`` after the last cycle)."""

    method = "alac"
    validate = staticmethod(validate_alac)

    def __init__(self, config: ExperimentConfig, out_dir, log=print, trial_id: str = "local", cache_dir=None):
        super().__init__(config, out_dir, log=log, trial_id=trial_id, cache_dir=cache_dir)
        al = config.alac
        #: The paper's RS baseline: one independent training per labeled-set size.
        self.one_shot = al.strategy == ONE_SHOT_RANDOM
        self.sizes = cycle_sizes(al.initial, al.per_cycle, al.budget)
        self._labeled_cache: dict[str, tuple[int, np.ndarray]] = {}

    # ------------------------------------------------------------------ state
    def fresh_state(self) -> ALACState:
        labels = LabelState(self.pool.ids)
        labels.label(initial_selection(self.pool.ids, self.config.seed, self.config.alac.initial), cycle=1)
        if self.one_shot:  # the rest of the pool in one random order from the seed; size n = its prefix
            rest = labels.unlabeled_ids
            order = np.random.default_rng([self.config.seed, 0, PURPOSE_ONE_SHOT]).permutation(len(rest))
            m0 = self.config.alac.initial
            for cycle, (lo, hi) in enumerate(zip(self.sizes, self.sizes[1:]), start=2):
                labels.label([rest[i] for i in order[lo - m0:hi - m0]], cycle=cycle)
        model, pretraining = initial_model(self.config, self.cache_dir, log=self.log)
        start = to_bytes(model.state_dict())
        return ALACState(labels, 1, start, None, None, None, [], pretraining, start if self.one_shot else None)

    def restore_state(self, saved: dict) -> ALACState:
        labels = LabelState(self.pool.ids)
        labels.load_state_dict(saved["labels"])
        return ALACState(labels, saved["next_cycle"], saved["model_state"], saved["optimizer_state"],
                         saved["classifier_state"], saved["classifier_optimizer_state"], saved["rows"],
                         saved.get("pretraining", ""), saved.get("initial_model_state"))

    def cycles(self) -> list[int]:
        return list(range(1, len(self.sizes) + 1))

    # ------------------------------------------------------------------ phases
    def _labeled_at(self, cycle: int) -> list[str]:
        """The ids labeled by ``cycle``, in labeling order."""
        return [i for i in self.state.labels.labeled_ids if self.state.labels.cycle_of(i) <= cycle]

    def _train(self, cycle: int, alignment: bool) -> TrainResult:
        cfg, state = self.config, self.state
        if self.one_shot:  # from the initial weights, seeded by the size, not the cycle: independent of m
            labeled = self._labeled_at(cycle)
            taken = set(labeled)
            unlabeled = [i for i in state.labels.pool_ids if i not in taken]
            # at m0 the strategies' first cycle exactly (same images, start and seed), so the first rows pair
            seed = derived_seed(cfg.seed, *((1, PURPOSE_TRAIN) if cycle == 1 else (len(labeled), PURPOSE_ONE_SHOT)))
            start = (state.initial_model_state, None, None, None)
        else:
            labeled, unlabeled = state.labels.labeled_ids, state.labels.unlabeled_ids
            seed = derived_seed(cfg.seed, cycle, PURPOSE_TRAIN)
            start = (state.model_state, state.optimizer_state, state.classifier_state, state.classifier_optimizer_state)
        job = train_job(cfg, cfg.dataset, labeled, unlabeled, alignment, seed, start)
        with loss_context(trial_context(cfg, self.trial_id), f"cycle {cycle}"), \
                progress.bar(f"train cycle {cycle}", job.train.epochs, unit="epoch") as shown:  # drawn only where a CLI enabled it
            loop = run_training
            if cfg.ray.train_workers == 0:  # in this process: the epochs advance the line (no closure goes to Ray)
                loop = functools.partial(run_training, progress=lambda _epoch: shown.advance())
            return run_loop(loop, job, cfg.ray, self.out_dir / "ray_train", f"{self.trial_id}_cycle{cycle}")

    def _scorer_kwargs(self, split: str, classifier_state: bytes | None = None) -> dict:
        cfg = self.config
        return dict(dataset=cfg.dataset, split=split, width=cfg.model.width, model_state=self.state.model_state,
                    classifier_state=classifier_state, levels=cfg.alac.levels, torch_threads=cfg.ray.torch_threads)

    def _labeled_evidence(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth counts and 1/8-resolution grid signatures of labeled images."""
        for item_id in ids:
            if item_id not in self._labeled_cache:
                sample = load_sample(self.pool.by_id(item_id), self.config.dataset)
                self._labeled_cache[item_id] = labeled_evidence(sample, self.config.alac.levels)
        counts = np.array([self._labeled_cache[i][0] for i in ids], dtype=np.float64)
        return counts, np.stack([self._labeled_cache[i][1] for i in ids])

    def _select(self, cycle: int) -> tuple[list[str], dict, float]:
        """Score the unlabeled pool, pick the images labeled at ``cycle + 1`` and label them;
        returns the ids, the selection's row columns and the scoring seconds."""
        cfg, state = self.config, self.state
        unlabeled = state.labels.unlabeled_ids
        classifier = state.classifier_state if cfg.alac.alignment_every_cycle else None
        labeled_counts, labeled_signatures = self._labeled_evidence(state.labels.labeled_ids)
        k = self.sizes[cycle] - self.sizes[cycle - 1]
        picked = score_and_select(cfg, self._scorer_kwargs(cfg.dataset.train_split, classifier), unlabeled,
                                  labeled_counts, labeled_signatures, k, cycle)
        state.labels.label(picked.ids, cycle + 1)
        return picked.ids, selection_summary(picked.result, picked.scores["count"]), picked.score_seconds

    # ------------------------------------------------------------------ one cycle
    def run_cycle(self, cycle: int) -> dict:
        """Train, evaluate, and (but in the last cycle) select; returns the cycle's row."""
        cfg, al, state = self.config, self.config.alac, self.state
        n_cycles = len(self.sizes)
        alignment = al.alignment and not self.one_shot and (cycle == n_cycles or al.alignment_every_cycle)
        t = time.perf_counter()
        result = self._train(cycle, alignment)
        state.keep(result)
        train_s, t = time.perf_counter() - t, time.perf_counter()
        test_scores = score_ids(self._scorer_kwargs(cfg.dataset.test_split), self.test.ids, cfg.ray)
        mae, rmse = mae_rmse(test_scores["count"], test_scores["true_count"])
        labeled_now = self._labeled_at(cycle)
        mean_mae, mean_rmse = self._mean_baseline(labeled_now, test_scores["true_count"])
        evaluate_s, t = time.perf_counter() - t, time.perf_counter()
        selecting = cycle < n_cycles and not self.one_shot
        selected, selection_report, score_s = self._select(cycle) if selecting else ([], NO_SELECTION, 0.0)
        select_s = time.perf_counter() - t - score_s
        return {
            "stage": "cycle", "n_labeled": len(labeled_now),
            "labeled_points": int(sum(self._count(i) for i in labeled_now)),
            "mae": mae, "rmse": rmse, "mean_baseline_mae": mean_mae, "mean_baseline_rmse": mean_rmse,
            "model_start": cfg.model.resolved_start, "pretraining": state.pretraining,
            "train_seconds": train_s, "score_seconds": score_s,
            "select_seconds": select_s, "evaluate_seconds": evaluate_s,
            "strategy": al.strategy, "alignment": alignment,
            "n_cycles": n_cycles, "train_steps": result.steps, "train_loss": result.mean_loss,
            "selected_ids": json.dumps(selected), "labeled_ids": json.dumps(labeled_now), **selection_report,
        }

    def _mean_baseline(self, labeled_ids: list[str], test_true: np.ndarray) -> tuple[float, float]:
        """MAE/RMSE of predicting every test image as the mean count of the labeled images: what
        a counter must beat to have learned anything from them."""
        mean = float(np.mean([self._count(i) for i in labeled_ids]))
        return mae_rmse(np.full(len(test_true), mean), test_true)

    def describe(self, row: dict) -> str:
        return (f"[{self.trial_id}] cycle {row['cycle']}/{row['n_cycles']}: {row['n_labeled']} labeled, MAE "
                f"{row['mae']:.2f} RMSE {row['rmse']:.2f} (Mean baseline {row['mean_baseline_mae']:.2f}; train "
                f"{row['train_seconds']:.1f} s, score {row['score_seconds']:.1f} s, select {row['select_seconds']:.2f} s, "
                f"evaluate {row['evaluate_seconds']:.1f} s{', aligned' if row['alignment'] else ''})")

    def after_cycle(self, cycle: int, row: dict) -> None:
        if cycle == len(self.sizes):
            self._write_examples()

    def _write_examples(self, n: int = 3) -> None:
        kwargs = self._scorer_kwargs(self.config.dataset.test_split)
        kwargs.pop("levels"), kwargs.pop("classifier_state")
        save_npz_atomic(self.out_dir / EXAMPLES, **density_examples(kwargs, self.test.ids[:n]))

    def _count(self, item_id: str) -> int:
        if item_id in self._labeled_cache:
            return self._labeled_cache[item_id][0]
        return self.pool.by_id(item_id).count

