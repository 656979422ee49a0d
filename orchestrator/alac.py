"""One AL-AC trial: a setting and a seed -> cycles of train, evaluate, score the pool, select.

Cycle t (1-based) trains on the labeled set V_t (continuing from cycle t-1's weights and
optimiser), evaluates on the test split, and — unless it is the last cycle — scores the
unlabeled pool and selects the images labeled at cycle t+1. The last cycle may train with
distribution alignment (GRL classifier + latent MixUp over labeled and unlabeled patches).

Reproducibility and resume: every random choice draws from a generator seeded by
``(seed, cycle, purpose)`` — the initial m0 images from ``seed`` alone, so every strategy with
the same seed starts from the same images — and nothing carries RNG state across cycles. After
each cycle the checkpoint (labeled ids with their cycles, model/optimiser/classifier states,
rows so far, the config) is written atomically; a restarted trial continues at the next cycle
and makes exactly the selections an uninterrupted one makes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from models import CSRNet
from orchestrator.al_state import LabelState
from orchestrator.config import ConfigError, ExperimentConfig
from orchestrator.data import block_sum
from orchestrator.pool import density_examples, mae_rmse, score_local, score_with_ray_data
from orchestrator.results import code_version, rows_frame, write_parquet_atomic
from orchestrator.samples import load_sample, open_split
from orchestrator.selection_bridge import check_strategy, select_batch
from orchestrator.train import TrainJob, run_training, to_bytes
from orchestrator.trial_state import InjectedFailure, derived_seed, save_checkpoint_atomic
from selection import grid_signature

CHECKPOINT = "checkpoint.pt"
ROWS = "rows.parquet"
EXAMPLES = "examples.npz"
PURPOSE_INITIAL, PURPOSE_TRAIN, PURPOSE_SELECT = 0, 1, 2


def cycle_sizes(initial: int, per_cycle: int, budget: int) -> list[int]:
    """Labeled-set size at each cycle: m0, m0+m, ... up to M. When M - m0 is not a multiple of
    m the last selection takes only the remainder, so the trial ends at exactly M labeled."""
    sizes = [initial]
    while sizes[-1] < budget:
        sizes.append(min(budget, sizes[-1] + per_cycle))
    return sizes


#: Pools up to this size keep every predicted count in the rows (for the partition figure).
MAX_COUNTS_IN_ROWS = 20_000


def selection_summary(result, pool_counts: np.ndarray) -> dict:
    """JSON columns describing one selection, for reports (AL-AC Fig. 3)."""
    counts = [round(float(c), 3) for c in pool_counts] if len(pool_counts) <= MAX_COUNTS_IN_ROWS else []
    return {
        "partition_breaks": json.dumps([float(b) for b in result.partition_breaks]),
        "pool_predicted_counts": json.dumps(counts),
        "selected_partitions": json.dumps([int(p) for p in result.selected_partition]),
    }


def validate_alac(config: ExperimentConfig, pool_size: int) -> None:
    """Everything checkable before any training; raises ConfigError naming the setting."""
    al = config.alac
    if al.per_cycle < 1:
        raise ConfigError(f"alac.per_cycle (m) must be >= 1, got {al.per_cycle}")
    if al.initial < 1:
        raise ConfigError(f"alac.initial (m0) must be >= 1, got {al.initial}")
    if al.budget < al.initial:
        raise ConfigError(f"alac.budget (M = {al.budget}) is below alac.initial (m0 = {al.initial})")
    if al.budget > pool_size:
        raise ConfigError(f"alac.budget (M = {al.budget}) exceeds the pool: the {config.dataset.name} "
                          f"{config.dataset.train_split} split has {pool_size} images")
    check_strategy(al.strategy)
    if al.strategy == "domain_classifier" and not al.alignment_every_cycle:
        raise ConfigError("alac.strategy domain_classifier (AL-AC-v) needs alac.alignment_every_cycle: true")
    for name in ("pretrained", "weights"):
        value = getattr(config.model, name)
        if value and not str(value).startswith(("http://", "https://")) and not Path(value).is_file():
            raise ConfigError(f"model.{name}: file not found: {value}")
    if config.ray.train_workers < 0 or config.ray.score_actors < 0:
        raise ConfigError("ray.train_workers and ray.score_actors must be >= 0")


def initial_model(config: ExperimentConfig) -> CSRNet:
    """Seeded initialisation, then ImageNet VGG16 front end and/or whole-network weights."""
    from orchestrator.weights import load_vgg16_imagenet, load_weights_into

    model = CSRNet(width=config.model.width, generator=torch.Generator().manual_seed(config.seed))
    if config.model.pretrained:
        load_vgg16_imagenet(model, config.model.pretrained)
    if config.model.weights:
        load_weights_into(model, config.model.weights)
    return model


@dataclasses.dataclass
class _TrialState:
    labels: LabelState
    next_cycle: int
    model_state: bytes
    optimizer_state: bytes | None
    classifier_state: bytes | None
    classifier_optimizer_state: bytes | None
    rows: list[dict]

    def checkpoint(self, config: ExperimentConfig) -> dict:
        return {"config": config.to_dict(), "labels": self.labels.state_dict(), "next_cycle": self.next_cycle,
                "model_state": self.model_state, "optimizer_state": self.optimizer_state,
                "classifier_state": self.classifier_state,
                "classifier_optimizer_state": self.classifier_optimizer_state, "rows": self.rows}


class ALACTrial:
    """Runs one AL-AC trial into ``out_dir`` (``checkpoint.pt``, ``rows.parquet``)."""

    def __init__(self, config: ExperimentConfig, out_dir: str | Path, log: Callable[[str], None] = print,
                 trial_id: str = "local"):
        if config.method != "alac":
            raise ConfigError(f"method must be 'alac' for an AL-AC trial, got {config.method!r}")
        self.config, self.out_dir, self.log, self.trial_id = config, Path(out_dir), log, trial_id
        self.pool = open_split(config.dataset, config.dataset.train_split)  # DatasetError early
        self.test = open_split(config.dataset, config.dataset.test_split)
        validate_alac(config, len(self.pool))
        al = config.alac
        self.sizes = cycle_sizes(al.initial, al.per_cycle, al.budget)
        self._labeled_cache: dict[str, tuple[int, np.ndarray]] = {}

    # ------------------------------------------------------------------ state
    def _fresh_state(self) -> _TrialState:
        labels = LabelState(self.pool.ids)
        rng = np.random.default_rng([self.config.seed, 0, PURPOSE_INITIAL])
        first = rng.choice(len(self.pool), size=self.config.alac.initial, replace=False)
        labels.label([self.pool.ids[i] for i in sorted(first)], cycle=1)
        model = initial_model(self.config)
        return _TrialState(labels, 1, to_bytes(model.state_dict()), None, None, None, [])

    def _load_state(self) -> _TrialState | None:
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved["config"] != self.config.to_dict():
            raise ConfigError(f"{path} was written by a different config; use another --out or delete it")
        labels = LabelState(self.pool.ids)
        labels.load_state_dict(saved["labels"])
        return _TrialState(labels, saved["next_cycle"], saved["model_state"], saved["optimizer_state"],
                           saved["classifier_state"], saved["classifier_optimizer_state"], saved["rows"])

    # ------------------------------------------------------------------ phases
    def _train(self, state: _TrialState, cycle: int, alignment: bool):
        cfg = self.config
        job = TrainJob(
            dataset=cfg.dataset, labeled_ids=state.labels.labeled_ids,
            unlabeled_ids=state.labels.unlabeled_ids if alignment else [], alignment=alignment,
            width=cfg.model.width, train=cfg.train, alac=cfg.alac,
            seed=derived_seed(cfg.seed, cycle, PURPOSE_TRAIN), model_state=state.model_state,
            optimizer_state=state.optimizer_state, classifier_state=state.classifier_state,
            classifier_optimizer_state=state.classifier_optimizer_state, torch_threads=cfg.ray.torch_threads,
        )
        if cfg.ray.train_workers >= 1:
            from orchestrator.ray_env import ensure_ray
            from orchestrator.ray_train import train_with_ray

            ensure_ray()
            return train_with_ray(job, cfg.ray, str(self.out_dir / "ray_train"), f"{self.trial_id}_cycle{cycle}")
        return run_training(job)

    def _score(self, split: str, ids: list[str], model_state: bytes, classifier_state: bytes | None) -> dict:
        cfg = self.config
        kwargs = dict(dataset=cfg.dataset, split=split, width=cfg.model.width, model_state=model_state,
                      classifier_state=classifier_state, levels=cfg.alac.levels, torch_threads=cfg.ray.torch_threads)
        if cfg.ray.score_actors >= 1:
            from orchestrator.ray_env import ensure_ray

            ensure_ray()
            return score_with_ray_data(kwargs, ids, cfg.ray.score_actors, cfg.ray.score_batch_size,
                                       cfg.ray.cpus_per_actor, 1.0 if cfg.ray.use_gpu else 0.0)
        return score_local(kwargs, ids, cfg.ray.score_batch_size)

    def _labeled_evidence(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth counts and 1/8-resolution grid signatures of labeled images."""
        for item_id in ids:
            if item_id not in self._labeled_cache:
                sample = load_sample(self.pool.by_id(item_id), self.config.dataset)
                target = block_sum(sample.density.astype(np.float64), 8)
                self._labeled_cache[item_id] = (sample.count, grid_signature(target, self.config.alac.levels))
        counts = np.array([self._labeled_cache[i][0] for i in ids], dtype=np.float64)
        return counts, np.stack([self._labeled_cache[i][1] for i in ids])

    # ------------------------------------------------------------------ main loop
    def run(self, fail_after_cycle: int | None = None, on_stage_end: Callable[[dict], None] | None = None):
        """Run (or resume) the trial; returns the rows as a DataFrame.

        ``on_stage_end(row)`` is called after each cycle's checkpoint and rows are on disk (the
        sweep reports them to Tune); after the last cycle ``examples.npz`` (Fig. 5 arrays for
        a few test images) is written first."""
        cfg, al = self.config, self.config.alac
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        if state is None:
            state = self._fresh_state()
        else:
            self.log(f"resuming {self.out_dir} at cycle {state.next_cycle} of {len(self.sizes)}")
        n_cycles = len(self.sizes)
        for cycle in range(state.next_cycle, n_cycles + 1):
            alignment = al.alignment and (cycle == n_cycles or al.alignment_every_cycle)
            started = time.perf_counter()
            result = self._train(state, cycle, alignment)
            train_s = time.perf_counter() - started
            state.model_state, state.optimizer_state = result.model_state, result.optimizer_state
            if result.classifier_state is not None:
                state.classifier_state = result.classifier_state
                state.classifier_optimizer_state = result.classifier_optimizer_state

            t = time.perf_counter()
            test_scores = self._score(cfg.dataset.test_split, self.test.ids, state.model_state, None)
            mae, rmse = mae_rmse(test_scores["count"], test_scores["true_count"])
            evaluate_s = time.perf_counter() - t

            score_s = select_s = 0.0
            selected: list[str] = []
            selection_report = {"partition_breaks": "[]", "pool_predicted_counts": "[]", "selected_partitions": "[]"}
            if cycle < n_cycles:
                t = time.perf_counter()
                unlabeled = state.labels.unlabeled_ids
                pool_scores = self._score(cfg.dataset.train_split, unlabeled, state.model_state,
                                          state.classifier_state if al.alignment_every_cycle else None)
                score_s = time.perf_counter() - t
                t = time.perf_counter()
                labeled_counts, labeled_signatures = self._labeled_evidence(state.labels.labeled_ids)
                k = self.sizes[cycle] - self.sizes[cycle - 1]
                rng = np.random.default_rng([cfg.seed, cycle, PURPOSE_SELECT])
                picked = select_batch(al, pool_scores, labeled_counts, labeled_signatures, k, rng)
                selected = [unlabeled[int(i)] for i in picked.selected]
                selection_report = selection_summary(picked, pool_scores["count"])
                state.labels.label(selected, cycle + 1)
                select_s = time.perf_counter() - t

            labeled = state.labels.labeled_ids
            labeled_now = [i for i in labeled if state.labels.cycle_of(i) <= cycle]
            row = {
                "experiment": cfg.experiment, "method": "alac", "dataset": cfg.dataset.name, "scale": cfg.scale,
                "trial_id": self.trial_id, "seed": cfg.seed, "cycle": cycle, "stage": "cycle",
                "n_labeled": len(labeled_now),
                "labeled_points": int(sum(self._count(i) for i in labeled_now)),
                "mae": mae, "rmse": rmse, "train_seconds": train_s, "score_seconds": score_s,
                "select_seconds": select_s, "evaluate_seconds": evaluate_s, "status": "ok", "error": "",
                "code_version": code_version(), "strategy": al.strategy, "alignment": alignment,
                "n_cycles": n_cycles, "train_steps": result.steps, "train_loss": result.mean_loss,
                "selected_ids": json.dumps(selected), "labeled_ids": json.dumps(labeled_now),
                **selection_report,
            }
            state.rows.append(row)
            state.next_cycle = cycle + 1
            save_checkpoint_atomic(state.checkpoint(cfg), self.out_dir / CHECKPOINT)
            write_parquet_atomic(rows_frame(state.rows), self.out_dir / ROWS)
            self.log(f"[{self.trial_id}] cycle {cycle}/{n_cycles}: {len(labeled_now)} labeled, MAE {mae:.2f} "
                     f"RMSE {rmse:.2f} (train {train_s:.1f} s, score {score_s:.1f} s, select {select_s:.2f} s, "
                     f"evaluate {evaluate_s:.1f} s{', aligned' if alignment else ''})")
            if cycle == n_cycles:
                self._write_examples(state.model_state)
            if on_stage_end is not None:
                on_stage_end(row)
            if fail_after_cycle == cycle:
                raise InjectedFailure(f"injected failure after cycle {cycle}")
        return rows_frame(state.rows)

    def _write_examples(self, model_state: bytes, n: int = 3) -> None:
        cfg = self.config
        kwargs = dict(dataset=cfg.dataset, split=cfg.dataset.test_split, width=cfg.model.width,
                      model_state=model_state, torch_threads=cfg.ray.torch_threads)
        arrays = density_examples(kwargs, self.test.ids[:n])
        tmp = self.out_dir / f".{EXAMPLES}.{os.getpid()}.tmp.npz"
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, self.out_dir / EXAMPLES)

    def _count(self, item_id: str) -> int:
        if item_id in self._labeled_cache:
            return self._labeled_cache[item_id][0]
        return self.pool.by_id(item_id).count
