"""Taking a team's annotations into a project: match every record to a project image,
validate the whole batch, then change the state once, atomically, under the project lock.

Checks: the image is one of the project's, its file is unchanged since ``init`` (sha256), the
size the file claims matches, every coordinate is a finite number inside the image
(``0 <= x <= width``, ``0 <= y <= height``), the image is not annotated already (unless
``replace``) and not twice in the batch. Every file of the batch is checked: each bad one is
reported with its first problem (a :class:`~orchestrator.annotate.project.BatchError`, one
message per bad file) and nothing of the batch is ingested. Accepted, with a note each: images
the latest round did not propose, images with no heads, shapes other than points (ignored),
and points equal to the round's pre-annotation (nobody moved, added or deleted one).
"""

from __future__ import annotations

import os
import posixpath
import time
from pathlib import Path

import numpy as np

from orchestrator.annotate.formats import Annotation, read_annotation_file
from orchestrator.annotate.project import AnnotateError, BatchError, check_unchanged, image_table, load_state, locked, save_state
from orchestrator.annotate.tool_files import unchanged_preannotation

#: Tests widen the race window between reading and writing the state with this many seconds.
HOLD_ENV = "ORCHESTRATOR_ANNOTATE_HOLD_S"


def _by_name(state: dict, name: str, stem: bool = False) -> list[str]:
    key = (lambda rel: Path(rel).stem) if stem else (lambda rel: posixpath.basename(rel))
    return [rel for rel in image_table(state) if key(rel) == name]


def _by_stem(state: dict, record: Annotation) -> list[str]:
    """Images named like a plain CSV/JSON file; the one beside it when it lies in the images folder."""
    candidates = _by_name(state, record.ref.replace("\\", "/"), stem=True)
    try:
        beside = record.file.resolve().with_suffix("").relative_to(Path(state["images_root"])).as_posix()
    except ValueError:
        return candidates
    return [c for c in candidates if str(Path(c).with_suffix("")) == beside] or candidates


def _by_path(state: dict, record: Annotation, ref: str) -> str | None:
    """The image ``ref`` names as a path: relative to the annotation file's folder or the images
    root, or the longest tail of ``ref`` of two or more parts that is an image's path."""
    images, root = image_table(state), Path(state["images_root"])
    for base in (record.file.resolve().parent, root):
        try:
            rel = (base / ref).resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            continue
        if rel in images:
            return rel
    parts = [p for p in ref.split("/") if p]
    tails = ["/".join(parts[i:]) for i in range(len(parts) - 1)]  # longest first, two parts or more
    return ref if ref in images else next((t for t in tails if t in images), None)


def match_image(state: dict, record: Annotation) -> str:
    """The project image (relative path) ``record`` refers to: by its path (see :func:`_by_path`),
    else by a unique file name (or, for plain files, stem)."""
    ref = record.ref.replace("\\", "/")
    if record.by_stem:
        candidates = _by_stem(state, record)
    else:
        found = _by_path(state, record, ref)
        if found is not None:
            return found
        name = posixpath.basename(ref)
        candidates = _by_name(state, name)
        if not candidates and "-" in name:  # Label Studio uploads are renamed '<8 hex>-<name>'
            candidates = _by_name(state, name.split("-", 1)[1])
    if len(candidates) == 1:
        return candidates[0]
    what, root = f"{record.file}: image {record.ref!r}", state["images_root"]
    if not candidates:
        raise AnnotateError(f"{what} is not an image of this project (images under {root})")
    raise AnnotateError(f"{what} is ambiguous: it matches {candidates[:3]}; name it by its path under {root}")


def check_record(state: dict, record: Annotation, rel: str) -> None:
    """Raise unless ``record``'s points fit the (unchanged) image ``rel``."""
    image = image_table(state)[rel]
    try:
        check_unchanged(state, rel)
    except AnnotateError as e:
        raise AnnotateError(f"{record.file}: {e}") from None
    height, width = image["height"], image["width"]
    if record.size is not None and tuple(record.size) != (height, width):
        raise AnnotateError(f"{record.file}: image {rel} is {width}x{height} pixels but the file says "
                            f"{record.size[1]}x{record.size[0]}")
    pts = record.points
    outside = np.flatnonzero((pts[:, 0] < 0) | (pts[:, 0] > width) | (pts[:, 1] < 0) | (pts[:, 1] > height))
    if len(outside):
        x, y = pts[outside[0]]
        raise AnnotateError(f"{record.file}: point {int(outside[0])} of {rel} at x={x:g}, y={y:g} lies outside "
                            f"the image (expected 0 <= x <= {width}, 0 <= y <= {height}); {len(outside)} such point(s)")


def _check_file(state: dict, path: Path, batch: dict[str, Annotation], replace: bool) -> dict[str, Annotation]:
    """The records of one file, matched and checked against the state and ``batch`` (the
    records of the good files before it); raises at the file's first problem."""
    records: dict[str, Annotation] = {}
    for record in read_annotation_file(Path(path)):
        rel = match_image(state, record)
        earlier = batch.get(rel) or records.get(rel)
        if earlier is not None:
            raise AnnotateError(f"{record.file}: image {rel} is annotated twice in this batch (also in {earlier.file})")
        if rel in state["annotations"] and not replace:
            raise AnnotateError(f"{record.file}: image {rel} is already annotated (from "
                                f"{state['annotations'][rel]['file']}); pass --replace to overwrite")
        check_record(state, record, rel)
        records[rel] = record
    return records


def _naming(path: Path, message: str) -> str:
    """``message``, prefixed with ``path`` unless it names the file already."""
    return message if str(path) in message else f"{path}: {message}"


def validate_batch(state: dict, files: list[Path], replace: bool,
                   project: Path | None = None) -> tuple[dict[str, Annotation], list[str]]:
    """Every record of ``files`` matched and checked -> (relative path -> record, notes); raises
    :class:`BatchError` naming every bad file (one message each) when any is bad."""
    batch: dict[str, Annotation] = {}
    problems = []
    for path in files:
        try:
            batch.update(_check_file(state, path, batch, replace))
        except AnnotateError as e:
            problems.append(_naming(Path(path), " ".join(str(e).split())))
    if problems:
        raise BatchError(problems, len(files))
    return batch, proposal_notes(state, list(batch)) + record_notes(state, batch, project)


def record_notes(state: dict, batch: dict[str, Annotation], project: Path | None) -> list[str]:
    """Notes on accepted records: shapes ignored, no heads, points equal to a pre-annotation."""
    notes = []
    for rel, record in batch.items():
        if record.ignored:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(record.ignored.items()))
            notes.append(f"note: {record.file}: {rel}: ignored shapes that are not points ({kinds}); only points are heads")
        if not len(record.points):
            notes.append(f"note: {record.file}: {rel} has no heads (taken as an image with nobody in it)")
        elif project is not None and unchanged_preannotation(project, state, rel, record.points):
            notes.append(f"note: {record.file}: {rel}: the points are the round's pre-annotation unchanged "
                         "(was it reviewed? pass --replace with a corrected file if not)")
    return notes


def proposal_notes(state: dict, rels: list[str]) -> list[str]:
    """One note per image that the latest round did not propose (allowed, but worth knowing)."""
    if not state["rounds"]:
        return []
    latest = state["rounds"][-1]
    rounds_of = {}
    for entry in state["rounds"]:
        for rel in entry["proposed"]:
            rounds_of.setdefault(rel, entry["round"])
    notes = []
    for rel in rels:
        if rel not in latest["proposed"]:
            where = f"proposed in round {rounds_of[rel]}" if rel in rounds_of else "never proposed"
            notes.append(f"note: {rel} was not proposed in round {latest['round']} ({where})")
    return notes


def apply_batch(state: dict, batch: dict[str, Annotation]) -> dict:
    """The state with ``batch`` ingested (a new dict; ``state`` is not modified)."""
    annotations = dict(state["annotations"])
    for rel, record in batch.items():
        annotations.pop(rel, None)  # a replaced annotation moves to the end (arrival order)
        annotations[rel] = {"points": [[float(x), float(y)] for x, y in record.points],
                            "file": str(Path(record.file).resolve()), "round": len(state["rounds"])}
    return {**state, "annotations": annotations}


def ingest(project: Path, files: list[Path], replace: bool = False) -> tuple[dict, list[str]]:
    """Validate ``files`` against the current state and ingest them all, or raise
    :class:`AnnotateError` and change nothing. Returns (ingested relative path -> heads, notes)."""
    if not files:
        raise AnnotateError("ingest: no annotation files given")
    with locked(project):
        state = load_state(project)
        batch, notes = validate_batch(state, files, replace, project)
        hold = float(os.environ.get(HOLD_ENV, "0") or 0)
        if hold > 0:
            time.sleep(hold)
        save_state(project, apply_batch(state, batch))
    return {rel: len(record.points) for rel, record in batch.items()}, notes
