"""One CSS-CCNN trial: a setting and a seed -> stage 1 (rotation self-supervision) -> stage 2
(Sinkhorn distribution matching with the extractor frozen, label-free epoch choice) -> test MAE.

The same runner produces the paper's baselines (``cssccnn.baseline``) and CSS-CCNN++
(``cssccnn.plus_plus``); what each trial runs, with its row's ``cycle`` and ``stage``:

=========================  ==========================================================
baseline                   stages (cycle: stage)
=========================  ==========================================================
``none`` (CSS-CCNN, ++)    1: ``stage1``; 2: ``stage2``
``random``                 1: ``stage1``; 2: ``random`` (stage-1 network, untrained head)
``mean`` / ``pprior``      2: ``mean`` / ``pprior`` (predictions from the prior alone)
``self_supervised_labels`` 1: ``stage1``; 2: ``self_supervised_labels`` (frozen features,
                           head trained with the train images' labels)
``fully_supervised``       2: ``fully_supervised`` (whole network from scratch, labels)
=========================  ==========================================================

The held-out images (``holdout_fraction`` of the train split, for stage-1 rotation accuracy and
stage-2 validation) are drawn once from the seed and the pool ids, stored in the checkpoint and
in ``holdout.json``, and reused on resume, never redrawn; the test split is used only for the
final MAE/RMSE. ``cssccnn.labeled_images = k > 0`` is the limited-data variant: k train images
(outside the held-out part, drawn once from the seed) lend their labels to stage 2.

Checkpoints: after each stage ``checkpoint.pt`` (ids, the stage-1 network, rows) and
``rows.parquet`` are written atomically; within a stage the loop writes
``<stage>_progress.pt`` after every ``checkpoint_every`` epochs. A restarted trial continues at
the next stage or epoch and ends with exactly the rows of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from models import CSSCCNN
from orchestrator.config import ConfigError, ExperimentConfig
from orchestrator.css_train import StageJob, StageResult, load_progress, run_stage
from orchestrator.css_validate import BASELINES, build_css_prior, validate_css
from orchestrator.pool import mae_rmse
from orchestrator.results import code_version, rows_frame, write_parquet_atomic
from orchestrator.trial_state import InjectedFailure, derived_seed, save_checkpoint_atomic
from orchestrator.samples import open_split
from orchestrator.train import to_bytes

CHECKPOINT = "checkpoint.pt"
ROWS = "rows.parquet"
HOLDOUT = "holdout.json"
STAGE1_MODEL = "stage1.pt"  # the chosen stage-1 network (orchestrator.weights format)
MODEL = "model.pt"  # the evaluated counting network (python -m orchestrator.evaluate --model cssccnn)
PURPOSE_STAGE1, PURPOSE_STAGE2, PURPOSE_LABELED, PURPOSE_PPRIOR = 11, 12, 13, 14

__all__ = ["BASELINES", "CSSCCNNTrial", "InjectedFailure", "evaluate_counts", "stage_plan"]


def stage_plan(baseline: str) -> list[tuple[int, str]]:
    """``(cycle, stage)`` pairs a trial runs, in order (see the module docstring)."""
    if baseline in ("mean", "pprior", "fully_supervised"):
        return [(2, baseline)]
    second = {"none": "stage2"}.get(baseline, baseline)
    return [(1, "stage1"), (2, second)]


def evaluate_counts(dataset, split: str, ids: list[str], width: float, model_state: bytes, min_side: int,
                    torch_threads: int = 1, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Whole-image predicted counts (sum of the 1/8 density) and annotated counts of ``ids``,
    images prepared as in training (``max_side``, upscaled to ``min_side`` when smaller)."""
    from orchestrator.css_train import load_prepared
    from orchestrator.train import from_bytes

    torch.set_num_threads(max(1, torch_threads))
    model = CSSCCNN(width=width)
    model.load_state_dict(from_bytes(model_state))
    model.to(device).eval()
    predicted, true = [], []
    with torch.inference_mode():
        for item_id in ids:
            prepared = load_prepared(dataset, split, [item_id], min_side, with_density=False)[0]
            predicted.append(float(model(CSSCCNN.normalize(prepared.image).to(device)).double().sum()))
            true.append(prepared.count)
    return np.array(predicted, dtype=np.float64), np.array(true, dtype=np.float64)


@dataclasses.dataclass
class _TrialState:
    holdout_ids: list[str]
    labeled_ids: list[str]
    next_cycle: int
    stage1_state: bytes | None
    rows: list[dict]

    def checkpoint(self, config: ExperimentConfig) -> dict:
        return {"config": config.to_dict(), **dataclasses.asdict(self)}


class CSSCCNNTrial:
    """Runs one CSS-CCNN trial into ``out_dir`` (``checkpoint.pt``, ``rows.parquet``,
    ``holdout.json``). The constructor validates everything before any work."""

    def __init__(self, config: ExperimentConfig, out_dir: str | Path, log: Callable[[str], None] = print,
                 trial_id: str = "local"):
        if config.method != "cssccnn":
            raise ConfigError(f"method must be 'cssccnn' for a CSS-CCNN trial, got {config.method!r}")
        self.config, self.out_dir, self.log, self.trial_id = config, Path(out_dir), log, trial_id
        self.pool = open_split(config.dataset, config.dataset.train_split)  # DatasetError early
        self.test = open_split(config.dataset, config.dataset.test_split)
        validate_css(config, len(self.pool))
        self.prior = build_css_prior(config.cssccnn, len(self.pool) + len(self.test))
        self.css = config.cssccnn
        self.variant = "css++" if self.css.plus_plus else "css"
        self.plan = stage_plan(self.css.baseline)
        digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
        self._config_digest = digest[:16]

    # ------------------------------------------------------------------ state
    def _fresh_state(self) -> _TrialState:
        from orchestrator.css_data import choose_holdout

        cfg = self.config
        holdout = choose_holdout(self.pool.ids, self.css.holdout_fraction, cfg.seed)
        labeled = []
        if self.css.labeled_images > 0:
            candidates = [i for i in self.pool.ids if i not in set(holdout)]
            rng = np.random.default_rng([cfg.seed, PURPOSE_LABELED])
            picked = sorted(rng.choice(len(candidates), size=self.css.labeled_images, replace=False).tolist())
            labeled = [candidates[i] for i in picked]
        return _TrialState(holdout, labeled, self.plan[0][0], None, [])

    def _load_state(self) -> _TrialState | None:
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.pop("config") != self.config.to_dict():
            raise ConfigError(f"{path} was written by a different config; use another --out or delete it")
        state = _TrialState(**saved)
        missing = sorted(set(state.holdout_ids) - set(self.pool.ids))
        if missing:
            raise ConfigError(f"{path}: stored held-out ids {missing[:3]} are not in the train split any more")
        return state

    def _initial_model_state(self) -> bytes:
        model = CSSCCNN(width=self.config.model.width, generator=torch.Generator().manual_seed(self.config.seed))
        if self.config.model.weights:
            from orchestrator.weights import load_weights_into

            load_weights_into(model, self.config.model.weights)
        return to_bytes(model.state_dict())

    @property
    def train_ids(self) -> list[str]:
        held = set(self._state.holdout_ids)
        return [i for i in self.pool.ids if i not in held]

    # ------------------------------------------------------------------ work
    def _job(self, stage: str, cycle: int, model_state: bytes, fail_after_epoch) -> StageJob:
        css, cfg = self.css, self.config
        kind = {"stage1": "rotation", "stage2": "sinkhorn"}.get(stage, "supervised")
        if kind == "rotation":
            epochs, lr, momentum, wd, batch = (css.stage1_epochs, css.stage1_lr, css.stage1_momentum,
                                               css.stage1_weight_decay, css.stage1_batch)
        else:
            epochs, lr, momentum, wd, batch = (css.stage2_epochs, css.stage2_lr, css.stage2_momentum,
                                               css.stage2_weight_decay, css.stage2_batch)
            if kind == "supervised":
                lr = css.supervised_lr
        labeled = self.train_ids if kind == "supervised" else list(self._state.labeled_ids)
        progress = self.out_dir / f"{stage}_progress.pt"
        key = f"{stage}:{self._config_digest}"
        epoch_failure = fail_after_epoch[1] if fail_after_epoch and fail_after_epoch[0] == cycle else None
        return StageJob(
            kind=kind, dataset=cfg.dataset, css=css, width=cfg.model.width,
            seed=derived_seed(cfg.seed, cycle, PURPOSE_STAGE1 if kind == "rotation" else PURPOSE_STAGE2),
            train_ids=self.train_ids, holdout_ids=list(self._state.holdout_ids), labeled_ids=labeled,
            model_state=model_state, freeze_features=stage in ("stage2", "self_supervised_labels"),
            epochs=epochs, lr=lr, momentum=momentum, weight_decay=wd, batch=batch,
            prior=self.prior if kind == "sinkhorn" else None, resume=load_progress(progress, key),
            progress_path=str(progress), progress_key=key, fail_after_epoch=epoch_failure,
            torch_threads=cfg.ray.torch_threads)

    def _train(self, job: StageJob, stage: str) -> StageResult:
        if job.resume is not None:
            self.log(f"[{self.trial_id}] resuming {stage} from its epoch checkpoint")
        if self.config.ray.train_workers >= 1:
            from orchestrator.ray_env import ensure_ray
            from orchestrator.ray_train import train_with_ray

            ensure_ray()
            return train_with_ray(job, self.config.ray, str(self.out_dir / "ray_train"),
                                  f"{self.trial_id}_{stage}", loop=run_stage)
        return run_stage(job)

    def _write_model(self, name: str, model_state: bytes, stage: str) -> None:
        from orchestrator.train import from_bytes
        from orchestrator.weights import save_checkpoint

        model = CSSCCNN(width=self.config.model.width)
        model.load_state_dict(from_bytes(model_state))
        tmp = self.out_dir / f".{name}.{os.getpid()}.tmp"
        save_checkpoint(tmp, model, {"seed": self.config.seed, "stage": stage, "variant": self.variant})
        os.replace(tmp, self.out_dir / name)

    def _evaluate(self, model_state: bytes) -> tuple[float, float]:
        cfg = self.config
        args = (cfg.dataset, cfg.dataset.test_split, self.test.ids, cfg.model.width, model_state, self.css.crop,
                cfg.ray.torch_threads)
        if cfg.ray.train_workers >= 1:  # on a Train worker's resources (its GPU when there is one)
            from orchestrator.ray_env import ensure_ray

            ray = ensure_ray()
            gpus = cfg.ray.gpus_per_worker if cfg.ray.use_gpu else 0
            task = ray.remote(num_cpus=cfg.ray.cpus_per_worker, num_gpus=gpus)(evaluate_counts)
            predicted, true = ray.get(task.remote(*args, "cuda" if cfg.ray.use_gpu else "cpu"))
        else:
            predicted, true = evaluate_counts(*args)
        return mae_rmse(predicted, true)

    def _prior_baseline(self, stage: str) -> tuple[float, float]:
        from ot.baselines import mean_count_predictions, prior_draw_predictions

        true = np.array([item.count for item in self.test], dtype=np.float64)
        if stage == "mean":
            predicted = mean_count_predictions(self.prior, len(true))
        else:
            rng = np.random.default_rng([self.config.seed, PURPOSE_PPRIOR])
            predicted = prior_draw_predictions(self.prior, len(true), rng, mode=self.css.prior_draw_mode)
        return mae_rmse(predicted, true)

    def _run_stage(self, cycle: int, stage: str, fail_after_epoch) -> dict:
        """Run one stage; returns its row's stage-specific fields."""
        fields = {"epoch_chosen": 0, "val_sinkhorn": math.nan, "val_sinkhorn_start": math.nan,
                  "rotation_accuracy": math.nan, "mae": math.nan, "rmse": math.nan, "train_seconds": 0.0,
                  "evaluate_seconds": 0.0, "epochs_run": 0, "stopped_early": False, "train_steps": 0,
                  "train_loss": math.nan, "val_history": "[]"}
        started = time.perf_counter()
        if stage in ("mean", "pprior"):
            fields["mae"], fields["rmse"] = self._prior_baseline(stage)
            fields["evaluate_seconds"] = time.perf_counter() - started
            return fields
        if stage == "random":
            model_state = self._state.stage1_state
        else:
            if stage == "stage1":
                start_state = self._initial_model_state()
            elif stage == "fully_supervised":
                start_state = self._initial_model_state()
            else:
                start_state = self._state.stage1_state
            if stage == "stage1" and self.css.stage1_epochs == 0:  # "without stage 1": keep the start
                self._state.stage1_state = start_state
                self._write_model(STAGE1_MODEL, start_state, stage)
                return fields
            result = self._train(self._job(stage, cycle, start_state, fail_after_epoch), stage)
            fields.update(epoch_chosen=result.chosen_epoch, epochs_run=result.epochs_run,
                          stopped_early=result.stopped_early, train_steps=result.steps,
                          train_loss=result.mean_loss, train_seconds=time.perf_counter() - started,
                          val_history=json.dumps(result.history))
            chosen, start = result.chosen_validation, result.start_validation
            fields["val_sinkhorn"] = chosen.get("sinkhorn", math.nan)
            fields["val_sinkhorn_start"] = start.get("sinkhorn", math.nan)
            fields["rotation_accuracy"] = chosen.get("rotation_accuracy", math.nan)
            if stage == "stage1":
                self._state.stage1_state = result.model_state
                self._write_model(STAGE1_MODEL, result.model_state, stage)
                return fields
            model_state = result.model_state
        self._write_model(MODEL, model_state, stage)
        t = time.perf_counter()
        fields["mae"], fields["rmse"] = self._evaluate(model_state)
        fields["evaluate_seconds"] = time.perf_counter() - t
        return fields

    def _labeled_summary(self, stage: str) -> tuple[int, int]:
        """(n_labeled, labeled_points) of the labels a stage used."""
        if stage in ("self_supervised_labels", "fully_supervised"):
            ids = self.pool.ids  # train labels (held-out ones for validation); never test labels
        elif stage == "stage2":
            ids = self._state.labeled_ids
        else:
            ids = []
        return len(ids), int(sum(self.pool.by_id(i).count for i in ids))

    # ------------------------------------------------------------------ main loop
    def run(self, fail_after_cycle: int | None = None, on_stage_end: Callable[[dict], None] | None = None,
            fail_after_epoch: tuple[int, int] | None = None):
        """Run (or resume) the trial; returns the rows as a DataFrame.

        ``on_stage_end(row)`` is called after each stage's checkpoint and rows are on disk.
        ``fail_after_cycle`` / ``fail_after_epoch = (cycle, epoch)`` raise
        :class:`InjectedFailure` after that stage's / epoch's checkpoint (resume tests)."""
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        if state is None:
            state = self._fresh_state()
        else:
            self.log(f"[{self.trial_id}] resuming {self.out_dir} at cycle {state.next_cycle}")
        self._state = state
        holdout_file = self.out_dir / HOLDOUT
        if not holdout_file.is_file():
            holdout_file.write_text(json.dumps({"seed": cfg.seed, "holdout_ids": state.holdout_ids,
                                                "labeled_ids": state.labeled_ids}, indent=1))
        for cycle, stage in self.plan:
            if cycle < state.next_cycle:
                continue
            fields = self._run_stage(cycle, stage, fail_after_epoch)
            n_labeled, labeled_points = self._labeled_summary(stage)
            row = {
                "experiment": cfg.experiment, "method": "cssccnn", "dataset": cfg.dataset.name, "scale": cfg.scale,
                "trial_id": self.trial_id, "seed": cfg.seed, "cycle": cycle, "stage": stage,
                "n_labeled": n_labeled, "labeled_points": labeled_points, "score_seconds": 0.0,
                "select_seconds": 0.0, "status": "ok", "error": "", "code_version": code_version(),
                "variant": self.variant, "baseline": self.css.baseline, "n_holdout": len(state.holdout_ids),
                **fields,
            }
            state.rows.append(row)
            state.next_cycle = cycle + 1
            save_checkpoint_atomic(state.checkpoint(cfg), self.out_dir / CHECKPOINT)
            write_parquet_atomic(rows_frame(state.rows), self.out_dir / ROWS)
            (self.out_dir / f"{stage}_progress.pt").unlink(missing_ok=True)
            self.log(f"[{self.trial_id}] cycle {cycle} {stage} ({self.variant}): epoch {row['epoch_chosen']} of "
                     f"{row['epochs_run']}, val Sinkhorn {row['val_sinkhorn']:.4g} (start "
                     f"{row['val_sinkhorn_start']:.4g}), rotation acc {row['rotation_accuracy']:.3f}, MAE "
                     f"{row['mae']:.2f} RMSE {row['rmse']:.2f} (train {row['train_seconds']:.1f} s, "
                     f"evaluate {row['evaluate_seconds']:.1f} s)")
            if on_stage_end is not None:
                on_stage_end(row)
            if fail_after_cycle == cycle:
                raise InjectedFailure(f"injected failure after cycle {cycle}")
        return rows_frame(state.rows)
