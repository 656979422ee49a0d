"""An annotation project on disk: one folder holding all state of annotation-team mode.

Layout of ``PROJECT/``:

* ``project.json`` — the state (written atomically, changed only under ``.lock``):
  ``images`` (relative POSIX path under ``images_root``, ``sha256`` of the file's bytes,
  ``height``/``width`` in pixels), ``annotations`` (relative path -> ``points``: list of
  ``[x, y]`` = (N, 2) floats, x = column, y = row, full-resolution pixels; ``file``: the file
  they came from; ``round``: how many rounds existed when they arrived), ``rounds`` (one entry
  per completed ``propose``), the config the rounds train with, ``seed`` and ``seconds_per_head``.
* ``rounds/round_NNN/`` — one folder per round (see :mod:`orchestrator.annotate.propose`).
* ``cache/`` — work shared between rounds (a label-free pretraining when the config asks for it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from pathlib import Path

from orchestrator.core.files import write_json_atomic
from orchestrator.data.base import DatasetError, read_image_size
from orchestrator.data.files import IMAGE_SUFFIXES, natural_key

STATE = "project.json"
LOCK = ".lock"
FORMAT = 1
#: "up to 10 minutes for an image with 500 persons" (AL-AC's annotation cost): 1.2 s per head.
DEFAULT_SECONDS_PER_HEAD = 1.2


class AnnotateError(ValueError):
    """Bad input to annotation-team mode; the message names the file, field or value at fault."""


class BatchError(AnnotateError):
    """Several bad annotation files of one batch: ``problems`` holds one message per bad file
    (each naming the file and the reason); ``total`` is the number of files in the batch."""

    def __init__(self, problems: list[str], total: int):
        super().__init__("; ".join(problems))
        self.problems, self.total = list(problems), int(total)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sort_key(rel: Path) -> tuple:
    return tuple(natural_key(Path(part)) for part in rel.parts)


def list_project_images(root: Path) -> list[str]:
    """Relative POSIX paths of every image under ``root`` (nested folders, the readers' image
    types; hidden files and folders skipped), in natural order of their path parts."""
    found = [p.relative_to(root) for p in root.rglob("*")
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return [p.as_posix() for p in sorted(found, key=_sort_key)]


def image_record(root: Path, rel: str) -> dict:
    """``{"path", "sha256", "height", "width"}`` of one image (header read only, no decode)."""
    try:
        height, width = read_image_size(root / rel)
    except DatasetError as e:
        raise AnnotateError(str(e)) from e
    return {"path": rel, "sha256": sha256_of(root / rel), "height": height, "width": width}


def new_state(images_root: Path, seed: int, config: dict, seconds_per_head: float) -> dict:
    """A fresh project state over every image under ``images_root``."""
    root = images_root.resolve()
    if not root.is_dir():
        raise AnnotateError(f"--images {images_root}: not a folder")
    rels = list_project_images(root)
    if not rels:
        raise AnnotateError(f"--images {images_root}: no images ({', '.join(IMAGE_SUFFIXES)}) in it or below it")
    return {"format": FORMAT, "images_root": str(root), "seed": int(seed), "config": config,
            "seconds_per_head": float(seconds_per_head), "images": [image_record(root, r) for r in rels],
            "annotations": {}, "rounds": []}


def load_state(project: Path) -> dict:
    """The state of ``project``, or an error naming what is missing or broken."""
    path = Path(project) / STATE
    if not path.is_file():
        raise AnnotateError(f"{project}: not an annotation project (no {STATE}; create one with 'init')")
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AnnotateError(f"{path}: unreadable project state ({e})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise AnnotateError(f"{path}: expected project state format {FORMAT}")
    return state


def save_state(project: Path, state: dict) -> None:
    """Write the state atomically (temporary file, then rename)."""
    write_json_atomic(Path(project) / STATE, state)


@contextlib.contextmanager
def locked(project: Path):
    """Hold the project's exclusive lock (``fcntl.flock`` on ``PROJECT/.lock``): every
    read-modify-write of the state happens inside it, so concurrent commands never lose updates."""
    path = Path(project) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def image_table(state: dict) -> dict[str, dict]:
    """Relative path -> image record."""
    return {rec["path"]: rec for rec in state["images"]}


def check_unchanged(state: dict, rel: str) -> None:
    """Raise unless the image file exists with the content hash recorded at ``init``."""
    path = Path(state["images_root"]) / rel
    if not path.is_file():
        raise AnnotateError(f"image {rel} is missing from {state['images_root']} (moved or deleted since init)")
    if sha256_of(path) != image_table(state)[rel]["sha256"]:
        raise AnnotateError(f"image {rel} changed since init (sha256 differs); its annotations would not match it")


def training_order(state: dict) -> list[str]:
    """Annotated images in the order training sees them (the trials' labeling order): images
    never proposed first (in collection order), then each round's proposals in pick order."""
    annotated = state["annotations"]
    proposed_at: dict[str, tuple[int, int]] = {}
    for entry in state["rounds"]:
        for index, rel in enumerate(entry["proposed"]):
            proposed_at.setdefault(rel, (entry["round"], index))
    position = {rec["path"]: n for n, rec in enumerate(state["images"])}
    return sorted(annotated, key=lambda rel: (*proposed_at.get(rel, (0, position[rel])),))


def unannotated(state: dict) -> list[str]:
    """Images without annotations, in collection order."""
    return [rec["path"] for rec in state["images"] if rec["path"] not in state["annotations"]]
