"""``propose``: the next batch of images to annotate, as one round folder.

Round 1 of a project with nothing annotated draws the batch with the trials' initial rule
(:func:`~orchestrator.alac.trial.initial_selection`). Every later round is one AL-AC cycle on
the annotated images: train (cycle ``c`` = trainings so far + 1, seed
``derived_seed(seed, c, PURPOSE_TRAIN)``, continuing from the last round's weights and
optimiser, or from the config's initial model), score every unannotated image and select with
the configured strategy — :func:`~orchestrator.alac.trial.score_and_select`, the trials' own code.
After the selection, with enough images annotated, a k-fold cross-validation of the round's
training on them (:mod:`orchestrator.annotate.crossval`; ``cv`` in the round's entry, ``cv.csv``).

The networks read a *workspace*: a ``folder`` dataset of links to the project's images (named
by their position in the collection, so the pool order is the collection order) with each
annotated image's points and an empty points file for the rest. The round is written into a
temporary folder and renamed into ``rounds/round_NNN`` only when complete; the state records
it last, under the lock. A killed ``propose`` therefore leaves the previous rounds intact and
can simply be rerun (a half-written or unrecorded folder is replaced).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from orchestrator.alac.scoring import PoolScorer
from orchestrator.alac.strategy import check_strategy
from orchestrator.alac.train import run_training
from orchestrator.alac.trial import PURPOSE_TRAIN, initial_model, initial_selection, labeled_evidence, score_and_select, train_job
from orchestrator.alac.validate import check_training
from orchestrator.annotate.crossval import CV_FILE, cross_validate, resolve_folds, write_cv_rows
from orchestrator.annotate.project import AnnotateError, check_unchanged, load_state, locked, save_state, training_order, unannotated
from orchestrator.annotate.round_files import RoundTable, write_round_files
from orchestrator.config import ConfigError, DatasetConfig, ExperimentConfig, load_config
from orchestrator.core.execution import run_loop
from orchestrator.core.files import save_torch_atomic, write_json_atomic
from orchestrator.core.samples import load_sample, open_split
from orchestrator.core.seeds import derived_seed
from orchestrator.core.tensors import to_bytes

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "alac" / "demo.yaml"
DEFAULT_SCALE = "demo"
MODEL = "model.pt"


def project_config(state: dict, path: str | None = None, scale: str | None = None,
                   overrides: list[str] | None = None, seed: int | None = None) -> ExperimentConfig:
    """The config a round trains with: ``path``/``scale`` or the project's, the project's
    ``--set`` overrides then ``overrides``, and ``seed`` or the project's seed."""
    given = state["config"]
    config = load_config(path or given.get("path") or DEFAULT_CONFIG, scale or given.get("scale") or DEFAULT_SCALE,
                         list(given.get("set") or []) + list(overrides or []),
                         seed=state["seed"] if seed is None else seed)
    check_strategy(config.alac.strategy, config.alac.domain_pick)
    if config.alac.strategy in ("count_threshold", "rs_baseline"):
        raise ConfigError(f"alac.strategy {config.alac.strategy} needs the pool's true counts or no selection; "
                          "annotation-team mode selects from unannotated images")
    check_training(config.alac.train)
    return config


@dataclasses.dataclass
class Workspace:
    """The project as a ``folder`` dataset: ``dataset`` (split ``all``) and the workspace id of
    each image (relative path -> id)."""

    dataset: DatasetConfig
    ids: dict[str, str]


def build_workspace(state: dict, folder: Path, config: ExperimentConfig) -> Workspace:
    """Links and points files for every image under ``folder`` (see the module docstring)."""
    folder.mkdir(parents=True)
    root, ids = Path(state["images_root"]), {}
    for n, image in enumerate(state["images"], start=1):
        rel = image["path"]
        ids[rel] = f"{n:07d}"
        link = folder / f"{ids[rel]}{Path(rel).suffix}"
        os.symlink(root / rel, link)
        points = state["annotations"].get(rel, {}).get("points", [])
        (folder / f"{ids[rel]}.csv").write_text("".join(f"{float(x)!r},{float(y)!r}\n" for x, y in points))
    dataset = dataclasses.replace(config.dataset, name="folder", root=str(folder), train_split="all",
                                  test_split="all", options={}, limit_train=None, limit_test=None, holdout=None)
    return Workspace(dataset, ids)


def _start_states(project: Path, state: dict, config: ExperimentConfig) -> tuple:
    """(model, optimiser, classifier, classifier optimiser) states to continue from."""
    trained = [r for r in state["rounds"] if r.get("model")]
    if not trained:
        model, _ = initial_model(config, project / "cache", log=lambda _m: None)
        return to_bytes(model.state_dict()), None, None, None
    last = trained[-1]
    if last["width"] != config.model.width:
        raise ConfigError(f"model.width {config.model.width} differs from round {last['round']}'s model "
                          f"(width {last['width']}); fine-tuning needs the same network")
    saved = torch.load(project / last["model"], map_location="cpu", weights_only=False)
    return saved["model_state"], saved["optimizer_state"], saved["classifier_state"], saved["classifier_optimizer_state"]


def _train_score_select(project: Path, state: dict, config: ExperimentConfig, work: Path, k: int, cycle: int):
    """One AL-AC cycle on the workspace -> (selection, train result, workspace)."""
    ws = build_workspace(state, work / "workspace", config)
    labeled = [ws.ids[r] for r in training_order(state)]
    pool = [ws.ids[r] for r in unannotated(state)]
    alignment = config.alac.alignment and config.alac.alignment_every_cycle
    job = train_job(config, ws.dataset, labeled, pool, alignment, derived_seed(config.seed, cycle, PURPOSE_TRAIN),
                    _start_states(project, state, config))
    result = run_loop(run_training, job, config.ray, work / "ray_train", f"annotate_cycle{cycle}")
    split = open_split(ws.dataset, "all")
    evidence = [labeled_evidence(load_sample(split.by_id(i), ws.dataset), config.alac.levels) for i in labeled]
    counts = np.array([e[0] for e in evidence], dtype=np.float64)
    kwargs = dict(dataset=ws.dataset, split="all", width=config.model.width, model_state=result.model_state,
                  classifier_state=result.classifier_state if alignment else None, levels=config.alac.levels,
                  torch_threads=config.ray.torch_threads)
    picked = score_and_select(config, kwargs, pool, counts, np.stack([e[1] for e in evidence]), k, cycle)
    return picked, result, ws, kwargs


def _cross_validate(project: Path, state: dict, config: ExperimentConfig, ws: Workspace, folds: int, cycle: int,
                    work: Path) -> tuple[dict, list[list]]:
    """The round's k-fold CV (after its selection) -> (summary, ``cv.csv`` rows)."""
    heads = {rel: len(state["annotations"][rel]["points"]) for rel in training_order(state)}
    alignment = config.alac.alignment and config.alac.alignment_every_cycle
    return cross_validate(config, ws, heads, [ws.ids[r] for r in unannotated(state)], alignment, folds, cycle,
                          project / "cache", work)


def _table(state: dict, config: ExperimentConfig, k: int, work: Path, project: Path, cycle: int, folds: int = 0):
    """Select (initial rule or one cycle), then cross-validate ``folds``-fold -> (RoundTable,
    scorer for the contact sheet or None, (CV summary, rows) or None)."""
    pool = unannotated(state)
    if not state["annotations"]:
        chosen = initial_selection(pool, config.seed, k)
        nan = np.full(k, np.nan)
        return RoundTable(chosen, nan, np.full(k, -1), np.full(k, k / len(pool)), nan, pool, None), None, None
    picked, result, ws, kwargs = _train_score_select(project, state, config, work, k, cycle)
    cv = _cross_validate(project, state, config, ws, folds, cycle, work) if folds else None
    back = {v: r for r, v in ws.ids.items()}
    rows, res = picked.result.selected, picked.result
    save_torch_atomic({"model_state": result.model_state, "optimizer_state": result.optimizer_state,
                       "classifier_state": result.classifier_state,
                       "classifier_optimizer_state": result.classifier_optimizer_state,
                       "width": config.model.width, "cycle": cycle}, work / "round" / MODEL)
    table = RoundTable([back[i] for i in picked.ids], picked.scores["count"][rows], res.selected_partition,
                       res.selected_probability, res.selected_score, pool,
                       {"count": picked.scores["count"], "partition": res.pool_partition,
                        "score": res.pool_score, "probability": res.pool_probability})
    return table, (PoolScorer(**kwargs), ws), cv


def _check_images(state: dict) -> None:
    for image in state["images"]:
        check_unchanged(state, image["path"])


def _record(project: Path, number: int, work: Path, entry: dict) -> None:
    """Move the finished round into place and append its entry to the state, under the lock."""
    final = project / entry["folder"]
    with locked(project):
        current = load_state(project)
        if len(current["rounds"]) != number - 1:
            raise AnnotateError(f"{project}: another propose recorded round {len(current['rounds'])} meanwhile")
        shutil.rmtree(final, ignore_errors=True)  # an unrecorded folder of a killed run
        os.replace(work / "round", final)
        current["rounds"] = current["rounds"] + [{k2: v for k2, v in entry.items() if k2 != "config"}]
        save_state(project, current)


def _cv_note(cv: dict | None) -> str:
    if cv is None:
        return ""
    return (f"; {cv['folds']}-fold CV MAE {cv['mae']:.2f} on {cv['images']} annotated images "
            f"(Mean baseline {cv['mean_baseline_mae']:.2f}; {cv['seconds']:.0f} s)")


def propose(project: Path, batch: int | None = None, seed: int | None = None, config_path: str | None = None,
            scale: str | None = None, overrides: list[str] | None = None,
            seconds_per_head: float | None = None, log=print, cv_folds: int | None = None) -> dict:
    """Write the next round (see the module docstring) and return its state entry."""
    project = Path(project)
    with locked(project):
        state = load_state(project)
    config = project_config(state, config_path, scale, overrides, seed)
    _check_images(state)
    number, pool = len(state["rounds"]) + 1, unannotated(state)
    k = batch if batch is not None else (config.alac.initial if not state["annotations"] else config.alac.per_cycle)
    if k < 1:
        raise AnnotateError(f"--batch must be >= 1, got {k}")
    if not pool:
        raise AnnotateError(f"{project}: every image is annotated; nothing left to propose")
    k, folds = min(k, len(pool)), resolve_folds(cv_folds, len(state["annotations"]))
    cycle = 1 + sum(1 for r in state["rounds"] if r.get("model"))
    name = f"round_{number:03d}"
    work = project / "rounds" / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        (work / "round").mkdir(parents=True)
        table, scorer, cv = _table(state, config, k, work, project, cycle, folds)
        sph = state["seconds_per_head"] if seconds_per_head is None else seconds_per_head
        entry = write_round_files(work / "round", state, table, scorer, number, sph)
        if cv is not None:
            write_cv_rows(work / "round" / CV_FILE, cv[1])
        entry.update(folder=f"rounds/{name}", seed=config.seed, strategy=config.alac.strategy if scorer else "initial",
                     model=f"rounds/{name}/{MODEL}" if scorer else None, width=config.model.width,
                     cycle=cycle if scorer else 0, trained_on=len(state["annotations"]),
                     cv=None if cv is None else cv[0], config=config.to_dict())
        write_json_atomic(work / "round" / "round.json", entry)
        _record(project, number, work, entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"round {number}: proposed {len(entry['proposed'])} images in {project / entry['folder']}{_cv_note(entry['cv'])}")
    return entry
