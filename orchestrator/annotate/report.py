"""``status`` and ``export`` of an annotation project.

``status`` summarises the state without running a network: per round the images proposed,
how many of them are annotated and their heads; annotation minutes spent (annotated heads x
seconds per head / 60) and still proposed (the predicted minutes of proposed, unannotated
images); the held-out MAE of each round's model, measured on the images it proposed once they
came back annotated (the model never trained on them: a prequential estimate); each round's
k-fold cross-validated MAE on the images it trained on (computed by ``propose``, see
:mod:`orchestrator.annotate.crossval`; the latest one is the "current model's"), with the Mean
baseline beside it; the predicted total count of what is still unannotated (from the latest
model's scores); and the images proposed but not yet annotated.

``export`` writes the annotated images as a ``folder`` dataset (``OUT/<flat name>.<ext>``
copied byte for byte, with ``OUT/<flat name>.csv`` of ``x,y`` points) that the sweep and
``evaluate`` read with ``dataset.name: folder`` (split ``all``).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from orchestrator.annotate.project import AnnotateError, check_unchanged, load_state, locked
from orchestrator.annotate.round_files import task_name


def _latest_scores(project: Path, state: dict) -> dict[str, float]:
    """Predicted counts of the latest round with a model (image -> people)."""
    for entry in reversed(state["rounds"]):
        path = project / entry["folder"] / "scores.csv"
        if entry.get("model") and path.is_file():
            with open(path, newline="") as f:
                return {row["image"]: float(row["predicted_count"]) for row in csv.DictReader(f)}
    return {}


def status(project: Path) -> dict:
    """The project's summary as a JSON-safe dict (see the module docstring)."""
    project = Path(project)
    with locked(project):
        state = load_state(project)
    annotations, sph = state["annotations"], state["seconds_per_head"]
    heads = {rel: len(a["points"]) for rel, a in annotations.items()}
    rounds, pending = [], []
    for entry in state["rounds"]:
        done = [rel for rel in entry["proposed"] if rel in heads]
        errors = [abs(entry["predicted"][rel] - heads[rel]) for rel in done if entry["predicted"].get(rel) is not None]
        rounds.append({"round": entry["round"], "strategy": entry["strategy"], "proposed": len(entry["proposed"]),
                       "annotated": len(done), "heads": int(sum(heads[r] for r in done)),
                       "trained_on": entry["trained_on"], "predicted_minutes": entry["predicted_minutes"],
                       "heldout_mae": float(np.mean(errors)) if errors else None,
                       "cv_mae": (entry.get("cv") or {}).get("mae"), "cv_folds": (entry.get("cv") or {}).get("folds")})
        pending += [(rel, entry) for rel in entry["proposed"] if rel not in heads]
    scores = _latest_scores(project, state)
    left = [r["path"] for r in state["images"] if r["path"] not in heads]
    proposed_minutes = sum((e["predicted"].get(rel) or 0.0) * e["seconds_per_head"] / 60 for rel, e in pending)
    return {"project": str(project), "images": len(state["images"]), "annotated": len(heads),
            "heads": int(sum(heads.values())), "minutes_spent": sum(heads.values()) * sph / 60.0,
            "minutes_proposed": proposed_minutes, "rounds": rounds,
            "heldout_mae": next((r["heldout_mae"] for r in reversed(rounds) if r["heldout_mae"] is not None), None),
            "cv": next(({"round": e["round"], **e["cv"]} for e in reversed(state["rounds"]) if e.get("cv")), None),
            "unannotated_predicted_total": sum(scores[r] for r in left if r in scores) if scores else None,
            "pending": sorted({rel for rel, _ in pending})}


def format_status(report: dict) -> str:
    """``status`` as text."""
    def num(v, fmt="{:.1f}"):
        return "-" if v is None else fmt.format(v)

    lines = [f"{report['project']}: {report['annotated']}/{report['images']} images annotated, {report['heads']} heads, "
             f"{num(report['minutes_spent'])} min spent, {num(report['minutes_proposed'])} min proposed and pending"]
    lines.append("round  strategy      proposed  annotated  heads  trained_on  est_min  heldout_MAE  cv_MAE (k)")
    for r in report["rounds"]:
        cv = "-" if r.get("cv_mae") is None else f"{r['cv_mae']:.2f} ({r['cv_folds']})"
        lines.append(f"{r['round']:>5}  {r['strategy']:<12}  {r['proposed']:>8}  {r['annotated']:>9}  {r['heads']:>5}  "
                     f"{r['trained_on']:>10}  {num(r['predicted_minutes']):>7}  {num(r['heldout_mae'], '{:.2f}'):>11}  {cv:>10}")
    lines.append(f"current model's held-out MAE: {num(report['heldout_mae'], '{:.2f}')}; predicted people in the "
                 f"unannotated images: {num(report['unannotated_predicted_total'])}")
    cv = report.get("cv")
    lines.append("current model's cross-validated MAE: " + ("- (none yet: by default once 6 images are annotated)" if cv is None
                 else f"{cv['mae']:.2f} ({cv['folds']}-fold over the {cv['images']} images round {cv['round']} trained on; "
                 f"Mean baseline {cv['mean_baseline_mae']:.2f})"))
    pending = report["pending"]
    lines.append(f"proposed, not yet annotated ({len(pending)}): " + (", ".join(pending[:20]) or "none")
                 + (" ..." if len(pending) > 20 else ""))
    return "\n".join(lines)


def export(project: Path, out: Path) -> int:
    """Write the annotated images as a ``folder`` dataset into ``out`` (a new or empty folder);
    returns the number of images. Points are written with full float precision."""
    project, out = Path(project), Path(out)
    with locked(project):
        state = load_state(project)
    if not state["annotations"]:
        raise AnnotateError(f"{project}: nothing is annotated yet; nothing to export")
    if out.exists() and any(out.iterdir()):
        raise AnnotateError(f"{out}: export folder exists and is not empty")
    names = [task_name(rel) for rel in state["annotations"]]
    clash = next((n for n in names if names.count(n) > 1), None)
    if clash is not None:
        raise AnnotateError(f"{project}: two annotated images export to the same name {clash!r}; rename one")
    out.mkdir(parents=True, exist_ok=True)
    root = Path(state["images_root"])
    for rel, annotation in state["annotations"].items():
        check_unchanged(state, rel)
        name = task_name(rel)
        shutil.copyfile(root / rel, out / f"{name}{Path(rel).suffix}")
        rows = "".join(f"{float(x)!r},{float(y)!r}\n" for x, y in annotation["points"])
        (out / f"{name}.csv").write_text("x,y\n" + rows)
    return len(state["annotations"])
