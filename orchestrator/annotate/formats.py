"""Reading point annotations back from the files annotation tools export, and writing the
LabelMe task files a round proposes.

Every reader turns one file into :class:`Annotation` records (one per image it covers): the
image reference as the tool wrote it, the points as ``(N, 2)`` float64 pixels (x = column,
y = row; Label Studio's percentages already converted with the size it states) and the image
size the file claims, if any. Validation against the project happens in
:mod:`orchestrator.annotate.ingest`.

========================= ===================================================================
format                    recognised by
========================= ===================================================================
LabelMe JSON              a JSON object with ``shapes``; ``shape_type: point`` shapes are heads
CVAT for images 1.1 XML   ``.xml`` with ``<image name=.. width=.. height=..>`` holding
                          ``<points points="x,y;x,y">`` (a ``<points>`` element may hold many)
Label Studio JSON         a JSON list of tasks with ``data`` and ``annotations``; keypoint
                          results give ``value.x``/``value.y`` in percent of the image size
VIA JSON                  a JSON object whose values have ``filename`` and ``regions``
                          (``shape_attributes.name == "point"``, ``cx``/``cy``)
plain CSV / JSON          as the ``folder`` reader takes them, named ``<image stem>.csv|.json``
========================= ===================================================================
"""

from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from orchestrator.annotate.project import AnnotateError
from orchestrator.data.base import DatasetError
from orchestrator.data.folder import folder_points

LABELME_VERSION = "5.2.1"


@dataclasses.dataclass
class Annotation:
    """One image's points from one file.

    Attributes:
        file: the file read.
        ref: the image as the file names it (a path, a file name, or for plain files the stem).
        points: ``(N, 2)`` float64, x = column, y = row, pixels of the full image.
        size: ``(height, width)`` the file claims, or ``None``.
        by_stem: ``ref`` is an image stem (plain CSV/JSON named after the image).
    """

    file: Path
    ref: str
    points: np.ndarray
    size: tuple[int, int] | None = None
    by_stem: bool = False


def _number(value, where: str) -> float:
    """A finite float, or an error naming ``where``."""
    if isinstance(value, bool):
        raise AnnotateError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnnotateError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise AnnotateError(f"{where}: expected a finite number, got {value!r}")
    return number


def _points(pairs: list, where: str) -> np.ndarray:
    values = [(_number(x, f"{where}[{i}].x"), _number(y, f"{where}[{i}].y")) for i, (x, y) in enumerate(pairs)]
    return np.array(values, dtype=np.float64).reshape(-1, 2)


def read_labelme(path: Path, data: dict) -> list[Annotation]:
    """LabelMe: point shapes are heads; other shape types are ignored."""
    shapes = data.get("shapes")
    if not isinstance(shapes, list):
        raise AnnotateError(f"{path}: field 'shapes' must be a list of shapes")
    if not isinstance(data.get("imagePath"), str) or not data["imagePath"]:
        raise AnnotateError(f"{path}: field 'imagePath' must name the image")
    pairs = []
    for i, shape in enumerate(shapes):
        if not isinstance(shape, dict) or shape.get("shape_type", "polygon") != "point":
            continue
        pts = shape.get("points")
        if not isinstance(pts, list) or len(pts) != 1 or not isinstance(pts[0], list) or len(pts[0]) != 2:
            raise AnnotateError(f"{path}: shapes[{i}].points must be [[x, y]] for a point shape")
        pairs.append(pts[0])
    size = None
    if "imageHeight" in data and "imageWidth" in data:
        size = (int(_number(data["imageHeight"], f"{path}: imageHeight")),
                int(_number(data["imageWidth"], f"{path}: imageWidth")))
    return [Annotation(path, data["imagePath"], _points(pairs, f"{path}: shapes"), size)]


def read_cvat(path: Path) -> list[Annotation]:
    """CVAT for images 1.1: ``<image name width height>`` with ``<points points="x,y;...">``."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise AnnotateError(f"{path}: unreadable CVAT XML ({e})") from e
    images = root.findall(".//image")
    if not images:
        raise AnnotateError(f"{path}: no <image> elements (expected CVAT for images 1.1 XML)")
    out = []
    for n, image in enumerate(images):
        where = f"{path}: <image> #{n + 1}"
        if not image.get("name"):
            raise AnnotateError(f"{where}: attribute 'name' is missing")
        pairs = []
        for element in image.findall("points"):
            for k, pair in enumerate((element.get("points") or "").split(";")):
                xy = pair.split(",")
                if len(xy) != 2:
                    raise AnnotateError(f"{where} ({image.get('name')}): points entry {k} {pair!r} is not 'x,y'")
                pairs.append(xy)
        size = None
        if image.get("width") and image.get("height"):
            size = (int(_number(image.get("height"), f"{where}.height")), int(_number(image.get("width"), f"{where}.width")))
        out.append(Annotation(path, image.get("name"), _points(pairs, f"{where} ({image.get('name')}) points"), size))
    return out


def _label_studio_task(path: Path, n: int, task) -> Annotation:
    where = f"{path}: task #{n + 1}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise AnnotateError(f"{where}: expected an object with 'data' and 'annotations'")
    ref = next((v for v in task["data"].values() if isinstance(v, str)), None)
    if ref is None:
        raise AnnotateError(f"{where}: 'data' names no image")
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not annotations:
        raise AnnotateError(f"{where} ({ref}): no annotation")
    pairs, size = [], None
    for k, result in enumerate(annotations[-1].get("result") or []):
        if not isinstance(result, dict) or result.get("type") not in ("keypointlabels", "keypoint"):
            continue
        h = _number(result.get("original_height"), f"{where}.result[{k}].original_height")
        w = _number(result.get("original_width"), f"{where}.result[{k}].original_width")
        value = result.get("value") or {}
        x = _number(value.get("x"), f"{where}.result[{k}].value.x") * w / 100.0
        y = _number(value.get("y"), f"{where}.result[{k}].value.y") * h / 100.0
        pairs.append((x, y))
        size = (int(h), int(w))
    return Annotation(path, ref, _points(pairs, f"{where} keypoints"), size)


def _via_entry(path: Path, key: str, entry) -> Annotation:
    where = f"{path}: {key}"
    if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
        raise AnnotateError(f"{where}: expected an object with 'filename' and 'regions'")
    regions = entry.get("regions") or []
    regions = list(regions.values()) if isinstance(regions, dict) else regions
    pairs = []
    for k, region in enumerate(regions):
        shape = region.get("shape_attributes", {}) if isinstance(region, dict) else {}
        if shape.get("name") == "point":
            pairs.append((shape.get("cx"), shape.get("cy")))
        elif not shape:
            raise AnnotateError(f"{where}: regions[{k}] has no shape_attributes")
    return Annotation(path, entry["filename"], _points(pairs, f"{where} regions"))


def read_json(path: Path) -> list[Annotation]:
    """LabelMe, Label Studio, VIA or plain ``folder`` JSON, told apart by their structure."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise AnnotateError(f"{path}: unreadable JSON ({e})") from e
    if isinstance(data, dict) and "shapes" in data:
        return read_labelme(path, data)
    if isinstance(data, list) and data and isinstance(data[0], dict) and "data" in data[0]:
        return [_label_studio_task(path, n, task) for n, task in enumerate(data)]
    via = data.get("_via_img_metadata", data) if isinstance(data, dict) else None
    if isinstance(via, dict) and via and all(isinstance(v, dict) and "filename" in v for v in via.values()):
        return [_via_entry(path, key, entry) for key, entry in via.items()]
    return [_plain(path)]


def _plain(path: Path) -> Annotation:
    try:
        points = folder_points(path)
    except DatasetError as e:
        raise AnnotateError(str(e)) from e
    return Annotation(path, path.stem, points, by_stem=True)


def read_annotation_file(path: Path) -> list[Annotation]:
    """Every image's points in ``path`` (format from the suffix and, for JSON, the structure)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotateError(f"{path}: annotation file not found")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return read_cvat(path)
    if suffix == ".json":
        return read_json(path)
    if suffix == ".csv":
        return [_plain(path)]
    raise AnnotateError(f"{path}: unknown annotation format {suffix!r} (expected .json, .xml or .csv)")


def labelme_task(image_path: str, height: int, width: int, points: np.ndarray | None = None) -> dict:
    """A LabelMe document for one image (``image_path`` relative to the document's folder),
    with one ``point`` shape labelled ``head`` per row of ``points`` (x, y pixels)."""
    shapes = [{"label": "head", "points": [[float(x), float(y)]], "group_id": None, "description": "",
               "shape_type": "point", "flags": {}} for x, y in (points if points is not None else [])]
    return {"version": LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": image_path,
            "imageData": None, "imageHeight": int(height), "imageWidth": int(width)}


def cvat_xml(images: list[tuple[str, int, int, np.ndarray]]) -> str:
    """CVAT for images 1.1 XML of ``(name, height, width, points (N, 2))`` entries: one
    ``<points label="head">`` element per head."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    for n, (name, height, width, points) in enumerate(images):
        image = ET.SubElement(root, "image", id=str(n), name=name, width=str(width), height=str(height))
        for x, y in points:
            ET.SubElement(image, "points", label="head", occluded="0", source="manual", points=f"{float(x)!r},{float(y)!r}")
    return ET.tostring(root, encoding="unicode")
