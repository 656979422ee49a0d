"""The Label Studio and CVAT import files of a round: what they hold, and that what a tool
gives back from them is read by our own ingest to the same points (round trip)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from test_annotate_ingest import H, W, labelme, make_project

from orchestrator.annotate.__main__ import main
from orchestrator.annotate.formats import read_annotation_file
from orchestrator.annotate.ingest import match_image
from orchestrator.annotate.project import load_state
from orchestrator.annotate.tool_files import PREANNOTATION, density_peaks, write_tool_files


@pytest.fixture(name="project")
def project_fixture(tmp_path):
    return make_project(tmp_path)


def submitted(tasks: list[dict]) -> list[dict]:
    """A Label Studio JSON export after an annotator submitted every task as pre-annotated
    (Label Studio copies the prediction's results into the annotation)."""
    return [{"id": n + 1, **task, "annotations": [{"id": n + 1, "was_cancelled": False,
                                                    "result": task["predictions"][0]["result"]}]}
            for n, task in enumerate(tasks)]


def test_density_peaks_are_the_strongest_maxima_at_full_resolution():
    density = np.zeros((8, 12))
    density[2, 3], density[2, 4] = 0.9, 0.3     # one head (its spill-over is no maximum)
    density[6, 10] = 1.0                        # another
    density[0, 0] = 0.05                        # a weak maximum, beyond round(sum) = 2
    points = density_peaks(density, input_shape=(64, 96), size=(128, 192))  # the network saw the image at half size
    np.testing.assert_allclose(points, [[10.5 * 16, 6.5 * 16], [3.5 * 16, 2.5 * 16]])
    assert density_peaks(np.zeros((8, 12)), (64, 96), (128, 192)).shape == (0, 2)
    edge = np.zeros((8, 12))
    edge[7, 11] = 1.0  # the last block's centre lies inside an input of 60 x 90 pixels cut to blocks of 8
    np.testing.assert_allclose(density_peaks(edge, (60, 90), (60, 90)), [[90.0, 60.0]])


def test_tool_files_read_back_to_the_same_points(project, tmp_path):
    state = load_state(project)
    images = ["IMG_2.jpg", "cam2/deep/IMG_8.png", "IMG_1.jpg"]
    points = {rel: np.array([[0.0, 0.0], [W, H], [12.345678901, 33.3333333333]]) + n for n, rel in enumerate(images)}
    points["IMG_1.jpg"] = np.zeros((0, 2))
    folder = tmp_path / "round"
    folder.mkdir()
    write_tool_files(folder, state, images, points, number=2)

    config = ET.fromstring((folder / "label_studio" / "labeling_config.xml").read_text())
    kp, image = config.find("KeyPointLabels"), config.find("Image")
    assert kp.get("toName") == image.get("name") and image.get("value") == "$image"
    assert [label.get("value") for label in kp.findall("Label")] == ["head"]
    tasks = json.loads((folder / "label_studio" / "tasks.json").read_text())
    for task, rel in zip(tasks, images):
        assert parse_qs(urlparse(task["data"]["image"]).query)["d"] == [f"images/{rel}"]  # under the document root
        results = task["predictions"][0]["result"]
        assert {(r["from_name"], r["to_name"], r["type"]) for r in results} <= {(kp.get("name"), image.get("name"), "keypointlabels")}
        assert len({r["id"] for r in results}) == len(results) == len(points[rel])
    export = tmp_path / "ls_export.json"
    export.write_text(json.dumps(submitted(tasks)))
    cvat = folder / "cvat" / "annotations.xml"
    assert [(i.get("id"), i.get("name")) for i in ET.parse(cvat).getroot().iter("image")] == \
        [("0", "IMG_1.jpg"), ("1", "IMG_2.jpg"), ("2", "IMG_8.png")]  # file names, in CVAT's lexicographic order
    for path in (export, cvat):
        back = {match_image(state, r): r.points for r in read_annotation_file(path)}
        assert sorted(back) == sorted(images), path
        for rel in images:
            np.testing.assert_allclose(back[rel], points[rel], rtol=0, atol=1e-9, err_msg=f"{path.name} {rel}")
    assert json.loads((folder / PREANNOTATION).read_text())["cam2/deep/IMG_8.png"] == points["cam2/deep/IMG_8.png"].tolist()


def test_round_1_files_have_no_predictions(project, tmp_path):
    assert main(["propose", str(project), "--batch", "3", "--seed", "2"]) == 0
    folder, proposed = project / "rounds" / "round_001", load_state(project)["rounds"][0]["proposed"]
    tasks = json.loads((folder / "label_studio" / "tasks.json").read_text())
    assert [t["data"]["project_image"] for t in tasks] == proposed and not any("predictions" in t for t in tasks)
    root = ET.parse(folder / "cvat" / "annotations.xml").getroot()
    assert len(root.findall("image")) == 3 and not root.findall(".//points") and not (folder / PREANNOTATION).exists()
    assert root.find("meta/task/labels/label/name").text == "head"


def test_round_2_preannotation_round_trips_and_unchanged_points_are_noted(project, tmp_path, capsys, monkeypatch):
    """A smoke-sized model may predict nobody, so the round's peaks are replaced by fixed points
    (after the real ones are computed and checked): what matters here is that the round writes
    them everywhere alike and that an unchanged submission comes back to them, with a note."""
    import orchestrator.annotate.round_files as round_files

    real = []

    def peaks(density, input_shape, size):
        real.append((density_peaks(density, input_shape, size), float(density.sum())))
        return np.array([[1.0, 2.0], [size[1] / 3, size[0] / 2], [size[1], size[0]]]) if len(real) == 1 else np.zeros((0, 2))

    monkeypatch.setattr(round_files, "density_peaks", peaks)
    assert main(["propose", str(project), "--batch", "3", "--seed", "2"]) == 0
    first = load_state(project)["rounds"][0]["proposed"]
    files = [labelme(tmp_path, rel, [[5.0 + n, 6.0], [30.0, 20.0 + n]], name=f"r1_{n}.json") for n, rel in enumerate(first)]
    assert main(["ingest", str(project), *map(str, files)]) == 0
    assert main(["propose", str(project), "--batch", "2"]) == 0
    entry = load_state(project)["rounds"][1]
    assert len(real) == 2 and all(len(p) <= max(0, round(total)) for p, total in real)
    folder = project / entry["folder"]
    pre = {rel: np.array(p).reshape(-1, 2) for rel, p in json.loads((folder / PREANNOTATION).read_text()).items()}
    assert list(pre) == entry["proposed"] and [len(pre[rel]) for rel in entry["proposed"]] == [3, 0]
    tasks = json.loads((folder / "label_studio" / "tasks.json").read_text())
    export = tmp_path / "ls_export.json"
    export.write_text(json.dumps(submitted(tasks)))
    capsys.readouterr()
    assert main(["ingest", str(project), str(export)]) == 0
    out = capsys.readouterr().out
    annotations = load_state(project)["annotations"]
    first_rel, second_rel = entry["proposed"]
    for rel in entry["proposed"]:
        np.testing.assert_allclose(np.reshape(annotations[rel]["points"], (-1, 2)), pre[rel], rtol=0, atol=1e-9)
    assert f"{first_rel}: the points are the round's pre-annotation unchanged" in out
    assert f"{second_rel} has no heads" in out and f"{second_rel}: the points are" not in out
    cvat = {r.ref: r.points for r in read_annotation_file(folder / "cvat" / "annotations.xml")}
    np.testing.assert_allclose(cvat[Path(first_rel).name], pre[first_rel], rtol=0, atol=1e-9)
