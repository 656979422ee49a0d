"""k-fold cross-validated MAE of a round's training on the annotated images (``propose
--cv-folds K``; ``status`` shows it).

The round's own model cannot be cross-validated as it stands: it continues from the earlier
rounds' weights, which saw every annotated image. So each fold is one training with the
round's settings and the round's trainer (:func:`~orchestrator.alac.trial.train_job` and
:func:`~orchestrator.alac.train.run_training`: epochs, optimiser, patches, alignment with the
unannotated pool when the round aligns) from the config's *initial* model on the other folds'
images, then the held-out fold is counted (:func:`~orchestrator.alac.scoring.score_ids`).
The estimate is therefore the error of one round's training on (k - 1)/k of the images from
the start, a pessimistic stand-in for the fine-tuned chain. Beside it: the Mean baseline (each
held-out image predicted as the mean count of its training folds).

Reproducible: the folds are a permutation of the annotated images (training order) drawn from
``(seed, cycle, PURPOSE_CV)``, image ``i`` of it in fold ``i mod k``; fold ``f`` trains with
``derived_seed(seed, cycle, PURPOSE_CV, f)``. It runs after the selection and touches nothing
the selection uses, so the proposals are those of a round without it. Cost: k trainings, each
about as long as the round's own when ``alac.train.max_steps_per_epoch`` caps the epochs.

Default: 3 folds once at least 6 images are annotated, none before; ``--cv-folds 0`` disables;
K >= 2 needs at least two annotated images per fold.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from orchestrator.alac.scoring import score_ids
from orchestrator.alac.train import run_training
from orchestrator.alac.trial import initial_model, train_job
from orchestrator.annotate.project import AnnotateError
from orchestrator.config import ExperimentConfig
from orchestrator.core.counting import mae_rmse
from orchestrator.core.execution import run_loop
from orchestrator.core.seeds import derived_seed
from orchestrator.core.tensors import to_bytes

PURPOSE_CV = 10  # beside the trials' purposes 0..3
DEFAULT_FOLDS = 3
CV_FILE = "cv.csv"


def resolve_folds(requested: int | None, annotated: int) -> int:
    """The folds to run: ``requested`` checked against ``annotated`` images, or the default."""
    if requested is None:
        return DEFAULT_FOLDS if annotated >= 2 * DEFAULT_FOLDS else 0
    if requested == 0:
        return 0
    if requested < 2:
        raise AnnotateError(f"--cv-folds must be 0 (off) or at least 2, got {requested}")
    if annotated < 2 * requested:
        raise AnnotateError(f"--cv-folds {requested} needs at least {2 * requested} annotated images "
                            f"(two per fold), have {annotated}")
    return requested


def fold_assignment(n: int, k: int, seed: int, cycle: int) -> np.ndarray:
    """``(n,)`` fold of each annotated image (training order): a seeded permutation dealt out."""
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng([seed, cycle, PURPOSE_CV]).permutation(n)] = np.arange(n) % k
    return folds


def _fold(config: ExperimentConfig, ws, train: list[str], held: list[str], pool: list[str], alignment: bool,
          start: bytes, seed: int, storage: Path, name: str) -> dict:
    """Train on ``train`` from ``start`` and score ``held`` -> PoolScorer outputs for ``held``."""
    job = train_job(config, ws.dataset, train, pool, alignment, seed, (start, None, None, None))
    result = run_loop(run_training, job, config.ray, storage, name)
    kwargs = dict(dataset=ws.dataset, split="all", width=config.model.width, model_state=result.model_state,
                  classifier_state=None, levels=config.alac.levels, torch_threads=config.ray.torch_threads)
    return score_ids(kwargs, held, config.ray)


def cross_validate(config: ExperimentConfig, ws, annotated: dict[str, int], pool: list[str], alignment: bool, k: int,
                   cycle: int, cache: Path, work: Path) -> tuple[dict, list[list]]:
    """k-fold CV over ``annotated`` (relative path -> heads, in training order) in workspace
    ``ws``; ``pool`` = workspace ids of the unannotated images -> (summary for the round's
    state, rows ``[image, fold, annotated, predicted]`` for ``cv.csv``)."""
    started = time.perf_counter()
    model, _ = initial_model(config, cache, log=lambda _m: None)
    start, ids = to_bytes(model.state_dict()), [ws.ids[r] for r in annotated]
    folds = fold_assignment(len(ids), k, config.seed, cycle)
    heads = np.array(list(annotated.values()), dtype=np.float64)
    predicted, baseline = np.zeros(len(ids)), np.zeros(len(ids))
    for f in range(k):
        held = np.flatnonzero(folds == f)
        train = [ids[i] for i in np.flatnonzero(folds != f)]
        scores = _fold(config, ws, train, [ids[i] for i in held], pool, alignment, start,
                       derived_seed(config.seed, cycle, PURPOSE_CV, f), work / "ray_cv", f"annotate_cycle{cycle}_cv{f}")
        predicted[held] = scores["count"]
        baseline[held] = heads[folds != f].mean()
    mae, rmse = mae_rmse(predicted, heads)
    summary = {"folds": k, "images": len(ids), "mae": mae, "rmse": rmse,
               "mean_baseline_mae": mae_rmse(baseline, heads)[0], "seconds": time.perf_counter() - started}
    rows = [[rel, int(folds[n]), int(heads[n]), float(predicted[n])] for n, rel in enumerate(annotated)]
    return summary, rows


def write_cv_rows(path: Path, rows: list[list]) -> None:
    """``cv.csv``: image, fold, annotated heads, predicted count (of the fold's model)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "fold", "annotated", "predicted_count"])
        writer.writerows([[r[0], r[1], r[2], f"{r[3]:.6g}"] for r in rows])
