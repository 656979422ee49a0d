"""Reading point annotations back from the files annotation tools export, and writing the
LabelMe task files a round proposes.

Every reader turns one file into :class:`Annotation` records (one per image it covers): the
image reference as the tool wrote it, the points as ``(N, 2)`` float64 pixels (x = column,
y = row; Label Studio's percentages already converted with the size it states), the image
size the file claims, if any, and how many shapes of other kinds it skipped. Only points are
heads: boxes, polygons, circles and the like are *ignored and reported* (``ingest`` prints a
note per image naming them), never turned into points, and never a reason to refuse the file.
Validation against the project happens in :mod:`orchestrator.annotate.ingest`.

========================= ===================================================================
format                    recognised by
========================= ===================================================================
LabelMe JSON              a JSON object with ``shapes``; ``shape_type: point`` shapes are heads
CVAT for images 1.1 XML   ``.xml`` with ``<image name=.. width=.. height=..>`` holding
                          ``<points points="x,y;x,y">`` (a ``<points>`` element may hold many)
Label Studio JSON         a JSON list of tasks with ``data`` and ``annotations``; keypoint
                          results give ``value.x``/``value.y`` in percent of the image size;
                          ``data.project_image`` (written by our task files) or ``data.image``
                          names the image (a ``/data/local-files/?d=<path>`` URL is decoded)
VIA JSON                  a JSON object whose values have ``filename`` and ``regions``
                          (``shape_attributes.name == "point"``, ``cx``/``cy``)
VIA CSV                   ``.csv`` whose header is VIA's ``[#]filename,file_size,
                          file_attributes,region_count,region_id,region_shape_attributes,
                          region_attributes``: one row per region, the shape as JSON
                          (``{"name":"point","cx":..,"cy":..}``); an image without regions
                          is one row with ``region_count`` 0 and ``{}``
plain CSV / JSON          as the ``folder`` reader takes them, named ``<image stem>.csv|.json``
========================= ===================================================================
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlparse

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
        ignored: shapes that are not points, skipped: kind -> how many.
    """

    file: Path
    ref: str
    points: np.ndarray
    size: tuple[int, int] | None = None
    by_stem: bool = False
    ignored: dict[str, int] = dataclasses.field(default_factory=dict)


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
    pairs, ignored = [], collections.Counter()
    for i, shape in enumerate(shapes):
        if not isinstance(shape, dict) or shape.get("shape_type", "polygon") != "point":
            ignored[str(shape.get("shape_type", "polygon")) if isinstance(shape, dict) else "non-object"] += 1
            continue
        pts = shape.get("points")
        if not isinstance(pts, list) or len(pts) != 1 or not isinstance(pts[0], list) or len(pts[0]) != 2:
            raise AnnotateError(f"{path}: shapes[{i}].points must be [[x, y]] for a point shape")
        pairs.append(pts[0])
    size = None
    if "imageHeight" in data and "imageWidth" in data:
        size = (int(_number(data["imageHeight"], f"{path}: imageHeight")),
                int(_number(data["imageWidth"], f"{path}: imageWidth")))
    return [Annotation(path, data["imagePath"], _points(pairs, f"{path}: shapes"), size, ignored=dict(ignored))]


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
        ignored = collections.Counter(child.tag for child in image if child.tag != "points")
        out.append(Annotation(path, image.get("name"), _points(pairs, f"{where} ({image.get('name')}) points"), size,
                              ignored=dict(ignored)))
    return out


#: The data field our Label Studio tasks carry with the image's path under the images root.
LS_PROJECT_KEY = "project_image"
LS_LOCAL_FILES = "/data/local-files/"
VIA_CSV_COLUMNS = ("filename", "file_size", "file_attributes", "region_count", "region_id",
                   "region_shape_attributes", "region_attributes")


def label_studio_ref(data: dict) -> str | None:
    """The image a Label Studio task names: ``data.project_image``, else ``data.image`` (a
    local-files URL ``/data/local-files/?d=<path>`` gives ``<path>``), else its first string."""
    ref = data.get(LS_PROJECT_KEY) or data.get("image")
    ref = ref if isinstance(ref, str) else next((v for v in data.values() if isinstance(v, str)), None)
    if ref is not None and LS_LOCAL_FILES in ref:
        ref = parse_qs(urlparse(ref).query).get("d", [ref])[0]
    return ref


def _label_studio_task(path: Path, n: int, task) -> Annotation:
    where = f"{path}: task #{n + 1}"
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise AnnotateError(f"{where}: expected an object with 'data' and 'annotations'")
    ref = label_studio_ref(task["data"])
    if ref is None:
        raise AnnotateError(f"{where}: 'data' names no image")
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not annotations:
        raise AnnotateError(f"{where} ({ref}): no annotation (predictions alone are not annotations)")
    pairs, size, ignored = [], None, collections.Counter()
    for k, result in enumerate(annotations[-1].get("result") or []):
        if not isinstance(result, dict) or result.get("type") not in ("keypointlabels", "keypoint"):
            ignored[str(result.get("type")) if isinstance(result, dict) else "non-object"] += 1
            continue
        h = _number(result.get("original_height"), f"{where}.result[{k}].original_height")
        w = _number(result.get("original_width"), f"{where}.result[{k}].original_width")
        value = result.get("value") or {}
        x = _number(value.get("x"), f"{where}.result[{k}].value.x") * w / 100.0
        y = _number(value.get("y"), f"{where}.result[{k}].value.y") * h / 100.0
        pairs.append((x, y))
        size = (int(h), int(w))
    return Annotation(path, ref, _points(pairs, f"{where} keypoints"), size, ignored=dict(ignored))


def _via_regions(regions: list[tuple[str, object]]) -> tuple[list, dict[str, int]]:
    """(point pairs, ignored shape names -> count) of ``(where, shape_attributes)`` regions."""
    pairs, ignored = [], collections.Counter()
    for where, shape in regions:
        if not isinstance(shape, dict):
            raise AnnotateError(f"{where}: shape_attributes must be an object, got {shape!r}")
        if shape.get("name") == "point":
            pairs.append((shape.get("cx"), shape.get("cy")))
        elif not shape:
            raise AnnotateError(f"{where}: the region has no shape_attributes")
        else:
            ignored[str(shape.get("name"))] += 1
    return pairs, dict(ignored)


def _via_entry(path: Path, key: str, entry) -> Annotation:
    where = f"{path}: {key}"
    if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
        raise AnnotateError(f"{where}: expected an object with 'filename' and 'regions'")
    regions = entry.get("regions") or []
    regions = list(regions.values()) if isinstance(regions, dict) else regions
    pairs, ignored = _via_regions([(f"{where}: regions[{k}]", r.get("shape_attributes", {}) if isinstance(r, dict) else r)
                                   for k, r in enumerate(regions)])
    return Annotation(path, entry["filename"], _points(pairs, f"{where} regions"), ignored=ignored)


def _via_csv_rows(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise AnnotateError(f"{path}: unreadable VIA CSV ({e})") from e
    header = [c.strip().lstrip("#") for c in rows[0]]
    if tuple(header[:len(VIA_CSV_COLUMNS)]) != VIA_CSV_COLUMNS:
        raise AnnotateError(f"{path}: header {rows[0]!r} is not VIA's ({','.join(VIA_CSV_COLUMNS)})")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(VIA_CSV_COLUMNS) or any(cell.strip() for cell in row[len(VIA_CSV_COLUMNS):]):
            raise AnnotateError(f"{path}: line {n} has {len(row)} columns, expected {len(VIA_CSV_COLUMNS)} "
                                "(VIA writes file names unquoted: a comma in one splits its row)")
        out.append({"line": n, **dict(zip(VIA_CSV_COLUMNS, row))})
    return out


def read_via_csv(path: Path) -> list[Annotation]:
    """VIA's CSV export: rows grouped by ``filename`` (in order of first appearance); each row's
    ``region_shape_attributes`` JSON is one region (``{}`` on the row of an image without any)."""
    shapes: dict[str, list] = {}
    for row in _via_csv_rows(path):
        where = f"{path}: line {row['line']} ({row['filename']})"
        try:
            shape = json.loads(row["region_shape_attributes"] or "{}")
        except ValueError:
            raise AnnotateError(f"{where}: region_shape_attributes {row['region_shape_attributes']!r} is not "
                                "JSON (expected like {\"name\":\"point\",\"cx\":10,\"cy\":20})") from None
        regions = shapes.setdefault(row["filename"], [])
        if shape != {} or row["region_count"].strip() not in ("", "0"):  # else: the row of an image without regions
            regions.append((where, shape))
    out = []
    for filename, regions in shapes.items():
        pairs, ignored = _via_regions(regions)
        out.append(Annotation(path, filename, _points(pairs, f"{path}: {filename} regions"), ignored=ignored))
    return out


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


def _is_via_csv(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return "region_shape_attributes" in f.readline()
    except (OSError, UnicodeDecodeError):
        return False


def read_annotation_file(path: Path) -> list[Annotation]:
    """Every image's points in ``path`` (format from the suffix and, for JSON and CSV, the content)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotateError(f"{path}: annotation file not found")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return read_cvat(path)
    if suffix == ".json":
        return read_json(path)
    if suffix == ".csv":
        return read_via_csv(path) if _is_via_csv(path) else [_plain(path)]
    raise AnnotateError(f"{path}: unknown annotation format {suffix!r} (expected .json, .xml or .csv)")


def labelme_task(image_path: str, height: int, width: int, points: np.ndarray | None = None) -> dict:
    """A LabelMe document for one image (``image_path`` relative to the document's folder),
    with one ``point`` shape labelled ``head`` per row of ``points`` (x, y pixels)."""
    shapes = [{"label": "head", "points": [[float(x), float(y)]], "group_id": None, "description": "",
               "shape_type": "point", "flags": {}} for x, y in (points if points is not None else [])]
    return {"version": LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": image_path,
            "imageData": None, "imageHeight": int(height), "imageWidth": int(width)}


def cvat_xml(images: list[tuple[str, int, int, np.ndarray]], task_name: str | None = None) -> str:
    """CVAT for images 1.1 XML of ``(name, height, width, points (N, 2))`` entries (``id`` =
    position in the list): one ``<points label="head">`` element per head; with ``task_name``
    also the ``<meta>`` of a task in annotation mode with the one label ``head`` of type points."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    if task_name is not None:
        task = ET.SubElement(ET.SubElement(root, "meta"), "task")
        for key, value in (("name", task_name), ("size", str(len(images))), ("mode", "annotation")):
            ET.SubElement(task, key).text = value
        label = ET.SubElement(ET.SubElement(task, "labels"), "label")
        ET.SubElement(label, "name").text = "head"
        ET.SubElement(label, "type").text = "points"
        ET.SubElement(label, "attributes")
    for n, (name, height, width, points) in enumerate(images):
        image = ET.SubElement(root, "image", id=str(n), name=name, width=str(width), height=str(height))
        for x, y in points:
            ET.SubElement(image, "points", label="head", source="manual", occluded="0",
                          points=f"{float(x)!r},{float(y)!r}", z_order="0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
