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
import time

import numpy as np
import torch

from models import CSSCCNN
from orchestrator.config import ConfigError, ExperimentConfig
from orchestrator.core.counting import mae_rmse, predict_count
from orchestrator.core.execution import run_loop, run_task
from orchestrator.core.files import save_npz_atomic, write_atomic, write_json_atomic
from orchestrator.core.finite import loss_context, trial_context
from orchestrator.core.seeds import derived_seed
from orchestrator.core.skeleton import InjectedFailure, TrialRunner
from orchestrator.core.tensors import from_bytes, to_bytes
from orchestrator.cssccnn.crops import choose_holdout
from orchestrator.cssccnn.stages import StageJob, StageResult, load_prepared, load_progress, run_stage
from orchestrator.cssccnn.validate import BASELINES, build_css_prior, validate_css

HOLDOUT = "holdout.json"
STAGE1_MODEL = "stage1.pt"  # the chosen stage-1 network (orchestrator.core.weights format)
EXAMPLES = "examples.npz"  # predicted vs true density of the first test images (report figure)
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
    torch.set_num_threads(max(1, torch_threads))
    model = CSSCCNN(width=width)
    model.load_state_dict(from_bytes(model_state))
    model.to(device).eval()
    predicted, true = [], []
    for item_id in ids:
        prepared = load_prepared(dataset, split, [item_id], min_side, with_density=False)[0]
        predicted.append(predict_count(model, prepared.image, device))
        true.append(prepared.count)
    return np.array(predicted, dtype=np.float64), np.array(true, dtype=np.float64)


def density_examples(dataset, split: str, ids: list[str], width: float, model_state: bytes,
                     min_side: int) -> dict[str, np.ndarray]:
    """Arrays for the predicted-vs-true density figure of a few test images (the same format as
    AL-AC's ``examples.npz``): ``image_<n>`` (H, W, 3) uint8, ``target_<n>`` (h, w) float32 =
    the count-exact target at 1/8, ``predicted_<n>`` (h, w) float32; plus ``ids``."""
    from orchestrator.core.counting import predict_density
    from orchestrator.data import block_sum

    model = CSSCCNN(width=width)
    model.load_state_dict(from_bytes(model_state))
    model.eval()
    arrays = {"ids": np.array(ids, dtype=str)}
    for n, prepared in enumerate(load_prepared(dataset, split, ids, min_side, with_density=True)):
        arrays[f"image_{n}"] = prepared.image
        arrays[f"target_{n}"] = block_sum(prepared.density, 8).astype(np.float32)
        arrays[f"predicted_{n}"] = predict_density(model, prepared.image).cpu().numpy().astype(np.float32)
    return arrays


@dataclasses.dataclass
class CSSState:
    """Everything a CSS-CCNN trial carries from one stage to the next."""

    holdout_ids: list[str]
    labeled_ids: list[str]
    next_cycle: int
    stage1_state: bytes | None
    rows: list[dict]

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)


class CSSCCNNTrial(TrialRunner):
    """Runs one CSS-CCNN trial into ``out_dir`` (``checkpoint.pt``, ``rows.parquet``,
    ``holdout.json``, ``stage1.pt``, ``model.pt``). The constructor validates everything
    before any work."""

    method = "cssccnn"
    validate = staticmethod(validate_css)

    def __init__(self, config: ExperimentConfig, out_dir, log=print, trial_id: str = "local", cache_dir=None):
        super().__init__(config, out_dir, log=log, trial_id=trial_id, cache_dir=cache_dir)
        self._fail_after_epoch = None
        self.prior = build_css_prior(config.cssccnn, len(self.pool) + len(self.test))
        self.css = config.cssccnn
        self.variant = "css++" if self.css.plus_plus else "css"
        self.plan = stage_plan(self.css.baseline)
        digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
        self._config_digest = digest[:16]

    # ------------------------------------------------------------------ state
    def fresh_state(self) -> CSSState:
        cfg = self.config
        holdout = choose_holdout(self.pool.ids, self.css.holdout_fraction, cfg.seed)
        labeled = []
        if self.css.labeled_images > 0:
            candidates = [i for i in self.pool.ids if i not in set(holdout)]
            rng = np.random.default_rng([cfg.seed, PURPOSE_LABELED])
            picked = sorted(rng.choice(len(candidates), size=self.css.labeled_images, replace=False).tolist())
            labeled = [candidates[i] for i in picked]
        return CSSState(holdout, labeled, self.plan[0][0], None, [])

    def restore_state(self, saved: dict) -> CSSState:
        state = CSSState(**saved)
        missing = sorted(set(state.holdout_ids) - set(self.pool.ids))
        if missing:
            raise ConfigError(f"{self.out_dir / 'checkpoint.pt'}: stored held-out ids {missing[:3]} are not in "
                              "the train split any more")
        return state

    def cycles(self) -> list[int]:
        return [cycle for cycle, _ in self.plan]

    def _initial_model_state(self) -> bytes:
        model = CSSCCNN(width=self.config.model.width, generator=torch.Generator().manual_seed(self.config.seed))
        if self.config.model.weights:
            from orchestrator.core.weights import load_weights_into

            load_weights_into(model, self.config.model.weights)
        return to_bytes(model.state_dict())

    @property
    def train_ids(self) -> list[str]:
        held = set(self.state.holdout_ids)
        return [i for i in self.pool.ids if i not in held]

    # ------------------------------------------------------------------ work
    def _job(self, stage: str, cycle: int, model_state: bytes, fail_after_epoch) -> StageJob:
        css, cfg = self.css, self.config
        kind = {"stage1": "rotation", "stage2": "sinkhorn"}.get(stage, "supervised")
        schedule = css.stage1 if kind == "rotation" else css.stage2
        if kind == "supervised":
            schedule = dataclasses.replace(schedule, lr=css.supervised_lr)
        labeled = self.train_ids if kind == "supervised" else list(self.state.labeled_ids)
        progress = self.out_dir / f"{stage}_progress.pt"
        key = f"{stage}:{self._config_digest}"
        epoch_failure = fail_after_epoch[1] if fail_after_epoch and fail_after_epoch[0] == cycle else None
        return StageJob(
            kind=kind, dataset=cfg.dataset, css=css, width=cfg.model.width,
            seed=derived_seed(cfg.seed, cycle, PURPOSE_STAGE1 if kind == "rotation" else PURPOSE_STAGE2),
            train_ids=self.train_ids, holdout_ids=list(self.state.holdout_ids), labeled_ids=labeled,
            model_state=model_state, freeze_features=stage in ("stage2", "self_supervised_labels"),
            schedule=schedule,
            prior=self.prior if kind == "sinkhorn" else None, resume=load_progress(progress, key),
            progress_path=str(progress), progress_key=key, fail_after_epoch=epoch_failure,
            torch_threads=cfg.ray.torch_threads)

    def _train(self, job: StageJob, stage: str) -> StageResult:
        if job.resume is not None:
            self.log(f"[{self.trial_id}] resuming {stage} from its epoch checkpoint")
        with loss_context(trial_context(self.config, self.trial_id), f"stage {stage}"):  # a NaN/inf loss names its trial
            return run_loop(run_stage, job, self.config.ray, self.out_dir / "ray_train", f"{self.trial_id}_{stage}")

    def _write_model(self, name: str, model_state: bytes, stage: str) -> None:
        from orchestrator.core.weights import save_checkpoint

        model = CSSCCNN(width=self.config.model.width)
        model.load_state_dict(from_bytes(model_state))
        extra = {"seed": self.config.seed, "stage": stage, "variant": self.variant}
        write_atomic(self.out_dir / name, lambda tmp: save_checkpoint(tmp, model, extra))

    def _evaluate(self, model_state: bytes) -> tuple[float, float]:
        cfg = self.config
        args = (cfg.dataset, cfg.dataset.test_split, self.test.ids, cfg.model.width, model_state, self.css.crop,
                cfg.ray.torch_threads)
        predicted, true = run_task(evaluate_counts, args, cfg.ray)  # on a Train worker's resources
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
            model_state = self.state.stage1_state
        else:
            if stage == "stage1":
                start_state = self._initial_model_state()
            elif stage == "fully_supervised":
                start_state = self._initial_model_state()
            else:
                start_state = self.state.stage1_state
            if stage == "stage1" and self.css.stage1.epochs == 0:  # "without stage 1": keep the start
                self.state.stage1_state = start_state
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
                self.state.stage1_state = result.model_state
                self._write_model(STAGE1_MODEL, result.model_state, stage)
                return fields
            model_state = result.model_state
        self._write_model(MODEL, model_state, stage)
        t = time.perf_counter()
        fields["mae"], fields["rmse"] = self._evaluate(model_state)
        cfg = self.config
        save_npz_atomic(self.out_dir / EXAMPLES, **density_examples(
            cfg.dataset, cfg.dataset.test_split, self.test.ids[:3], cfg.model.width, model_state, self.css.crop))
        fields["evaluate_seconds"] = time.perf_counter() - t
        return fields

    def _labeled_summary(self, stage: str) -> tuple[int, int]:
        """(n_labeled, labeled_points) of the labels a stage used."""
        if stage in ("self_supervised_labels", "fully_supervised"):
            ids = self.pool.ids  # train labels (held-out ones for validation); never test labels
        elif stage == "stage2":
            ids = self.state.labeled_ids
        else:
            ids = []
        return len(ids), int(sum(self.pool.by_id(i).count for i in ids))

    # ------------------------------------------------------------------ the skeleton's hooks
    def run(self, fail_after_cycle: int | None = None, on_stage_end=None,
            fail_after_epoch: tuple[int, int] | None = None):
        """Run (or resume) the trial; returns the rows as a DataFrame.

        ``fail_after_cycle`` / ``fail_after_epoch = (cycle, epoch)`` raise
        :class:`InjectedFailure` after that stage's / epoch's checkpoint (resume tests)."""
        self._fail_after_epoch = fail_after_epoch
        return super().run(fail_after_cycle=fail_after_cycle, on_stage_end=on_stage_end)

    def begin(self) -> None:
        holdout_file = self.out_dir / HOLDOUT
        if not holdout_file.is_file():
            write_json_atomic(holdout_file, {"seed": self.config.seed, "holdout_ids": self.state.holdout_ids,
                                             "labeled_ids": self.state.labeled_ids})

    def run_cycle(self, cycle: int) -> dict:
        stage = dict(self.plan)[cycle]
        fields = self._run_stage(cycle, stage, self._fail_after_epoch)
        n_labeled, labeled_points = self._labeled_summary(stage)
        return {"stage": stage, "n_labeled": n_labeled, "labeled_points": labeled_points, "score_seconds": 0.0,
                "select_seconds": 0.0, "variant": self.variant, "baseline": self.css.baseline,
                "n_holdout": len(self.state.holdout_ids), **fields}

    def after_cycle(self, cycle: int, row: dict) -> None:
        (self.out_dir / f"{row['stage']}_progress.pt").unlink(missing_ok=True)

    def describe(self, row: dict) -> str:
        return (f"[{self.trial_id}] cycle {row['cycle']} {row['stage']} ({self.variant}): epoch "
                f"{row['epoch_chosen']} of {row['epochs_run']}, val Sinkhorn {row['val_sinkhorn']:.4g} (start "
                f"{row['val_sinkhorn_start']:.4g}), rotation acc {row['rotation_accuracy']:.3f}, MAE "
                f"{row['mae']:.2f} RMSE {row['rmse']:.2f} (train {row['train_seconds']:.1f} s, "
                f"evaluate {row['evaluate_seconds']:.1f} s)")
