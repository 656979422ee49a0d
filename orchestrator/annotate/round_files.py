"""The files of one proposed round, for people and for annotation tools.

``round_NNN/``:

* ``proposals.csv`` — the ranked table, one row per proposed image in pick order: ``rank``,
  ``image`` (path under the images root), ``predicted_count`` (people; empty in a first round
  without a model), ``partition`` (PSSW's count partition, -1 without), ``probability`` (of the
  draw that picked it), ``dissimilarity`` (the strategy's score: GDSIM for PSSW),
  ``est_minutes`` (= predicted count x seconds per head / 60);
* ``tasks.csv`` — the list to hand out: ``image``, ``path`` (absolute), ``width``, ``height``;
* ``labelme/<image path with / as __>.json`` — an empty LabelMe document per image (open it in
  LabelMe, click heads as points, save);
* ``label_studio/``, ``cvat/`` and ``preannotation.json`` — import files for Label Studio and
  CVAT, pre-annotated with the model's predicted heads (see :mod:`orchestrator.annotate.tool_files`);
* ``scores.csv`` — every unannotated image's predicted count, partition, score and probability;
* ``contact_sheet.png`` — the proposed images with their predicted density overlaid;
* ``model.pt`` and ``round.json`` — the weights the round trained (for the next round) and its record.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from orchestrator.annotate.formats import labelme_task
from orchestrator.annotate.project import image_table
from orchestrator.annotate.tool_files import density_peaks, write_tool_files
from orchestrator.data.base import read_image_rgb

SHEET = "contact_sheet.png"
TILE = 256  # longest side of a contact-sheet tile, pixels


@dataclasses.dataclass
class RoundTable:
    """A round's picks: ``images`` (k,) relative paths in pick order and per pick the
    ``predicted`` count, ``partition``, ``probability`` and ``dissimilarity`` (k,) arrays;
    ``pool`` the unannotated images scored (U,) and ``pool_scores`` their per-image arrays
    (``count``, ``partition``, ``score``, ``probability``), ``None`` without a model."""

    images: list[str]
    predicted: np.ndarray
    partition: np.ndarray
    probability: np.ndarray
    dissimilarity: np.ndarray
    pool: list[str]
    pool_scores: dict | None


def _cell(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.6g}"


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_tables(folder: Path, state: dict, table: RoundTable, seconds_per_head: float) -> list[float]:
    """``proposals.csv``, ``tasks.csv`` and ``scores.csv``; returns the estimated minutes per pick."""
    minutes = [float(c) * seconds_per_head / 60.0 for c in table.predicted]
    _write_csv(folder / "proposals.csv",
               ["rank", "image", "predicted_count", "partition", "probability", "dissimilarity", "est_minutes"],
               [[n + 1, rel, _cell(table.predicted[n]), int(table.partition[n]), _cell(table.probability[n]),
                 _cell(table.dissimilarity[n]), _cell(minutes[n])] for n, rel in enumerate(table.images)])
    images, root = image_table(state), Path(state["images_root"])
    _write_csv(folder / "tasks.csv", ["image", "path", "width", "height"],
               [[rel, str(root / rel), images[rel]["width"], images[rel]["height"]] for rel in table.images])
    if table.pool_scores is not None:
        s = table.pool_scores
        _write_csv(folder / "scores.csv", ["image", "predicted_count", "partition", "score", "probability"],
                   [[rel, _cell(s["count"][n]), int(s["partition"][n]), _cell(s["score"][n]), _cell(s["probability"][n])]
                    for n, rel in enumerate(table.pool)])
    return minutes


def task_name(rel: str) -> str:
    """A flat file stem for an image path (``a/b/c.jpg`` -> ``a__b__c``)."""
    return str(Path(rel).with_suffix("")).replace(os.sep, "__").replace("/", "__")


def write_labelme_tasks(folder: Path, state: dict, images: list[str]) -> None:
    """One empty LabelMe document per proposed image (``imagePath`` absolute, so it opens from anywhere)."""
    tasks, table, root = folder / "labelme", image_table(state), Path(state["images_root"])
    tasks.mkdir(exist_ok=True)
    for rel in images:
        doc = labelme_task(str(root / rel), table[rel]["height"], table[rel]["width"])
        (tasks / f"{task_name(rel)}.json").write_text(json.dumps(doc, indent=1))


def _tiles(state: dict, images: list[str], scorer) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(image (H, W, 3) uint8, predicted 1/8 density (h, w) or None) per proposed image."""
    if scorer is None:
        root = Path(state["images_root"])
        return [(read_image_rgb(root / rel), None) for rel in images]
    from orchestrator.core.counting import predict_density
    from orchestrator.core.samples import load_sample

    model, ws = scorer
    out = []
    for rel in images:
        sample = load_sample(model.items[ws.ids[rel]], ws.dataset, with_density=False)
        out.append((sample.image, predict_density(model.model, sample.image, model.device).cpu().numpy()))
    return out


def contact_sheet(path: Path, titles: list[str], tiles: list[tuple[np.ndarray, np.ndarray | None]], heading: str) -> None:
    """A grid of the images (up to 4 per row), each with its predicted density (people per
    pixel, upsampled to the image) overlaid in a heat colour map, titled with ``titles``."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, title, (image, density) in zip(axes.ravel(), titles, tiles):
        scale = TILE / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        ax.imshow(image)
        if density is not None:
            heat = cv2.resize(density.astype(np.float32), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
            top = float(heat.max())
            ax.imshow(np.ma.masked_less_equal(heat, 0.05 * top if top > 0 else 0), cmap="jet", alpha=0.5)
        ax.set_title(title, fontsize=8)
    fig.suptitle(heading, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_round_files(folder: Path, state: dict, table: RoundTable, scorer, number: int,
                      seconds_per_head: float) -> dict:
    """Every file of the round into ``folder``; returns the round's state entry."""
    minutes = write_tables(folder, state, table, seconds_per_head)
    write_labelme_tasks(folder, state, table.images)
    tiles, images = _tiles(state, table.images, scorer), image_table(state)
    peaks = None if scorer is None else {
        rel: density_peaks(density, image.shape[:2], (images[rel]["height"], images[rel]["width"]))
        for rel, (image, density) in zip(table.images, tiles)}
    write_tool_files(folder, state, table.images, peaks, number)
    titles = [f"#{n + 1} {rel}" + ("" if math.isnan(table.predicted[n]) else f"\npredicted {table.predicted[n]:.1f}")
              for n, rel in enumerate(table.images)]
    heading = (f"round {number}: " + ("first batch, drawn at random (no model yet)" if scorer is None
                                      else "proposed images, predicted density overlaid"))
    contact_sheet(folder / SHEET, titles, tiles, heading)
    pool_total = None if table.pool_scores is None else float(np.sum(table.pool_scores["count"]))
    return {"round": number, "proposed": list(table.images), "seconds_per_head": seconds_per_head,
            "predicted": {rel: (None if math.isnan(c) else float(c)) for rel, c in zip(table.images, table.predicted)},
            "predicted_minutes": None if scorer is None else float(np.sum(minutes)),
            "pool_predicted_total": pool_total}
