"""Import files for Label Studio and CVAT in every proposed round, with the model's predicted
heads as pre-annotation (from round 2 on; round 1 has no model).

``round_NNN/``:

* ``preannotation.json`` — proposed image -> predicted head points ``[[x, y], ...]`` in pixels
  of the full image: the strongest local maxima (3x3) of the predicted 1/8-resolution density,
  as many as the predicted count rounded (fewer where the crowd is denser than one head per
  8x8 block of the network's input, which the maxima cannot separate), each at its block's
  centre. A starting point to correct, not an annotation.
* ``label_studio/labeling_config.xml`` — a ``KeyPointLabels`` interface with one label ``head``.
* ``label_studio/tasks.json`` — one task per proposed image: ``data.image`` is a local-files
  URL ``/data/local-files/?d=<images folder name>/<image path>``, ``data.project_image`` the
  path under the images root (what ``ingest`` matches on); from round 2 on ``predictions`` holds
  the pre-annotation as ``keypointlabels`` results in percent of the image size.
* ``cvat/annotations.xml`` — CVAT for images 1.1: one ``<image>`` per proposed image (its file
  name, or its path under the images root when two proposed images share a name; ``id`` in
  the lexicographic order CVAT gives uploaded files by default) with the pre-annotation as
  ``<points label="head">`` elements (none in round 1).

How the team uses them:

* **Label Studio**: start it with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
  ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` = the folder *containing* the images folder; create
  a project, paste ``labeling_config.xml`` under Settings > Labeling Interface > Code; add a
  source storage of type Local files whose absolute path is the images folder, with "Treat
  every bucket object as a source file" off, and do not sync it; import ``tasks.json``.
  Annotators correct the pre-annotation (move, delete, add points) and submit; export as JSON
  and ``ingest`` the file. Predictions that nobody submitted are not exported as annotations.
* **CVAT**: create a task with one label ``head`` of type points and upload the images listed
  in ``tasks.csv`` (default sorting); from round 2 on, Upload annotations > "CVAT 1.1" >
  ``cvat/annotations.xml`` puts the pre-annotation on every image; annotate, export the task
  as "CVAT for images 1.1" and ``ingest`` its ``annotations.xml``. CVAT imports the
  pre-annotation as ordinary annotations, so an image nobody reviewed comes back with the
  model's points: ``ingest`` notes every image whose points equal its pre-annotation.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from urllib.parse import quote

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from orchestrator.annotate.formats import LS_LOCAL_FILES, LS_PROJECT_KEY, cvat_xml
from orchestrator.annotate.project import image_table

PREANNOTATION = "preannotation.json"
LABEL = "head"
#: Label Studio's point size (percent of the image size) in the pre-annotation.
LS_POINT_WIDTH = 0.5
#: CVAT writes coordinates with two decimals: points this close (pixels) count as unchanged.
UNCHANGED_PX = 0.006
LS_CONFIG = f"""<View>
  <Header value="Click every head: one point per person"/>
  <KeyPointLabels name="{LABEL}" toName="image" strokeWidth="2">
    <Label value="{LABEL}" background="red"/>
  </KeyPointLabels>
  <Image name="image" value="$image" zoom="true" zoomControl="true"/>
</View>
"""


def density_peaks(density: np.ndarray, input_shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Predicted heads ``(N, 2)`` (x, y pixels of the full ``size`` = (H, W) image) from the
    1/8 density ``(h, w)`` predicted on the network's ``input_shape`` = (H', W') input: the
    ``round(sum)`` largest positive 3x3 local maxima, at their blocks' centres."""
    n = int(round(float(density.sum())))
    if n <= 0:
        return np.zeros((0, 2))
    padded = np.pad(density.astype(np.float64), 1, constant_values=-np.inf)
    rows, cols = np.nonzero((density >= sliding_window_view(padded, (3, 3)).max(axis=(-2, -1))) & (density > 0))
    order = np.argsort(-density[rows, cols], kind="stable")[:n]
    (h_in, w_in), (height, width) = input_shape, size
    x = np.minimum((cols[order] + 0.5) * 8, w_in) * (width / w_in)
    y = np.minimum((rows[order] + 0.5) * 8, h_in) * (height / h_in)
    return np.clip(np.stack([x, y], axis=1), 0, [width, height])


def cvat_names(images: list[str]) -> list[str]:
    """The name CVAT gives each image uploaded as a file: its file name, unless two share one."""
    names = [posixpath.basename(rel) for rel in images]
    return names if len(set(names)) == len(names) else list(images)


def label_studio_task(root: Path, rel: str, record: dict, points: np.ndarray | None, version: str) -> dict:
    """One Label Studio task for image ``rel``, with ``points`` as a prediction when given."""
    task = {"data": {"image": f"{LS_LOCAL_FILES}?d={quote(f'{root.name}/{rel}')}", LS_PROJECT_KEY: rel}}
    if points is not None:
        w, h = record["width"], record["height"]
        task["predictions"] = [{"model_version": version, "result": [
            {"id": f"{version}_{k}", "from_name": LABEL, "to_name": "image", "type": "keypointlabels",
             "original_width": w, "original_height": h, "image_rotation": 0,
             "value": {"x": float(x) / w * 100.0, "y": float(y) / h * 100.0, "width": LS_POINT_WIDTH,
                       "keypointlabels": [LABEL]}} for k, (x, y) in enumerate(points)]}]
    return task


def write_tool_files(folder: Path, state: dict, images: list[str], points: dict[str, np.ndarray] | None,
                     number: int) -> None:
    """``preannotation.json`` (with a model), ``label_studio/`` and ``cvat/`` (see the module docstring)."""
    table, root, version = image_table(state), Path(state["images_root"]), f"round_{number:03d}"
    if points is not None:
        (folder / PREANNOTATION).write_text(json.dumps({rel: points[rel].tolist() for rel in images}))
    ls = folder / "label_studio"
    ls.mkdir()
    (ls / "labeling_config.xml").write_text(LS_CONFIG)
    tasks = [label_studio_task(root, rel, table[rel], None if points is None else points[rel], version) for rel in images]
    (ls / "tasks.json").write_text(json.dumps(tasks, indent=1))
    empty = np.zeros((0, 2))
    entries = sorted((name, table[rel]["height"], table[rel]["width"], empty if points is None else points[rel])
                     for name, rel in zip(cvat_names(images), images))
    (folder / "cvat").mkdir()
    (folder / "cvat" / "annotations.xml").write_text(cvat_xml(entries, task_name=version))


def unchanged_preannotation(project: Path, state: dict, rel: str, points: np.ndarray) -> bool:
    """Whether ``points`` equal (to :data:`UNCHANGED_PX`, in any order) the pre-annotation of
    the latest round that proposed ``rel``."""
    for entry in reversed(state["rounds"]):
        path = Path(project) / entry["folder"] / PREANNOTATION
        if rel in entry["proposed"]:
            if not path.is_file():
                return False
            predicted = np.asarray(json.loads(path.read_text()).get(rel, []), dtype=np.float64).reshape(-1, 2)
            if len(predicted) != len(points):
                return False
            a, b = (p[np.lexsort((p[:, 1], p[:, 0]))] for p in (predicted, np.asarray(points, np.float64)))
            return bool(np.all(np.abs(a - b) <= UNCHANGED_PX))
    return False
