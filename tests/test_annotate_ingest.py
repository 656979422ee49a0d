"""Annotation-team mode without training: init, ingest in every format, every ingest error
(named file and reason, exit 2, state unchanged), concurrent ingests, a killed propose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image

from orchestrator.annotate import propose as propose_module
from orchestrator.annotate.__main__ import main
from orchestrator.annotate.formats import cvat_xml, labelme_task
from orchestrator.annotate.ingest import HOLD_ENV
from orchestrator.annotate.project import STATE, load_state

ROOT = Path(__file__).resolve().parents[1]
H, W = 48, 64


def make_project(tmp_path: Path) -> Path:
    """A project over six small images, two of them in a nested folder."""
    images = tmp_path / "images"
    for n in range(4):
        write_image(images / f"IMG_{n + 1}.jpg", H, W, seed=n)
    write_image(images / "cam2" / "IMG_7.png", H, W, seed=7)
    write_image(images / "cam2" / "deep" / "IMG_8.png", H, W, seed=8)
    path = tmp_path / "project"
    assert main(["init", str(path), "--images", str(images), "--scale", "smoke"]) == 0
    return path


@pytest.fixture()
def project(tmp_path) -> Path:
    return make_project(tmp_path)


def labelme(tmp: Path, image: str, points, name: str | None = None, **fields) -> Path:
    doc = {**labelme_task(image, H, W), **fields}  # raw values, so that bad ones reach the reader
    doc["shapes"] = [{"label": "head", "points": [list(p)], "shape_type": "point"} for p in points]
    path = tmp / (name or f"{Path(image).stem}.json")
    path.write_text(json.dumps(doc))
    return path


def run_error(capsys, project: Path, *files, replace=False) -> str:
    """An ingest that must fail: exit 2, one 'error:' line per bad file then one saying nothing
    was ingested, no traceback, the state unchanged. Returns the bad files' lines."""
    before = (project / STATE).read_bytes()
    assert main(["ingest", str(project), *map(str, files), *(["--replace"] if replace else [])]) == 2
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert all(line.startswith("error: ") for line in lines) and "Traceback" not in err, err
    assert lines[-1].startswith("error: nothing ingested: ") and f"of {len(files)} annotation files are bad" in lines[-1]
    assert (project / STATE).read_bytes() == before, "a failed ingest changed the state"
    return "\n".join(lines[:-1])


def test_init_records_nested_images_with_hashes(project):
    state = load_state(project)
    paths = [r["path"] for r in state["images"]]
    # natural order of the path parts, case-insensitive: folder "cam2" before "IMG_1.jpg"
    assert paths == ["cam2/deep/IMG_8.png", "cam2/IMG_7.png", "IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg", "IMG_4.jpg"]
    assert all(len(r["sha256"]) == 64 and (r["height"], r["width"]) == (H, W) for r in state["images"])


def test_init_errors_exit_2(tmp_path, capsys):
    assert main(["init", str(tmp_path / "p"), "--images", str(tmp_path / "none")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["init", str(tmp_path / "p"), "--images", str(tmp_path / "empty")]) == 2
    assert "no images" in capsys.readouterr().err
    write_image(tmp_path / "imgs" / "a.jpg")
    assert main(["init", str(tmp_path / "p"), "--images", str(tmp_path / "imgs"), "--set", "alac.budgett=3"]) == 2
    assert "budgett" in capsys.readouterr().err and not (tmp_path / "p" / STATE).exists()


def test_every_format_ingests_the_same_points(project, tmp_path):
    pts = [[1.5, 2.25], [63.0, 47.0], [0.0, 0.0]]
    files = [labelme(tmp_path, "IMG_1.jpg", pts)]
    (tmp_path / "cvat.xml").write_text(cvat_xml([("IMG_2.jpg", H, W, np.array(pts))]))
    files.append(tmp_path / "cvat.xml")
    (tmp_path / "IMG_3.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in pts))
    files.append(tmp_path / "IMG_3.csv")
    ls = [{"data": {"image": "/data/upload/1/3fa2b1c0-IMG_4.jpg"}, "annotations": [{"result": [
        {"type": "keypointlabels", "original_width": W, "original_height": H,
         "value": {"x": x / W * 100, "y": y / H * 100}} for x, y in pts]}]}]
    (tmp_path / "ls.json").write_text(json.dumps(ls))
    via = {"IMG_7.png123": {"filename": "cam2/IMG_7.png", "regions": [
        {"shape_attributes": {"name": "point", "cx": x, "cy": y}} for x, y in pts]}}
    (tmp_path / "via.json").write_text(json.dumps(via))
    (tmp_path / "IMG_8.json").write_text(json.dumps({"points": pts}))
    files += [tmp_path / "ls.json", tmp_path / "via.json", tmp_path / "IMG_8.json"]
    assert main(["ingest", str(project), *map(str, files)]) == 0
    annotations = load_state(project)["annotations"]
    assert len(annotations) == 6
    for rel, a in annotations.items():
        np.testing.assert_allclose(a["points"], pts, rtol=0, atol=1e-9, err_msg=rel)
    out = tmp_path / "export"
    assert main(["export", str(project), str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.csv")) == sorted(
        ["IMG_1.csv", "IMG_2.csv", "IMG_3.csv", "IMG_4.csv", "cam2__IMG_7.csv", "cam2__deep__IMG_8.csv"])


@pytest.mark.parametrize("case, expected", [
    ("unknown", "is not an image of this project"),
    ("not_numeric", "expected a number"),
    ("outside", "lies outside the image"),
    ("size", "but the file says"),
    ("twice", "annotated twice in this batch"),
    ("broken_json", "unreadable JSON"),
    ("no_points_field", "no 'points' field"),
    ("bad_cvat", "is not 'x,y'"),
    ("suffix", "unknown annotation format"),
])
def test_each_ingest_error_names_the_file_and_changes_nothing(project, tmp_path, capsys, case, expected):
    good = labelme(tmp_path, "IMG_2.jpg", [[3, 4]], name="good.json")
    bad = tmp_path / "bad.json"
    if case == "unknown":
        labelme(tmp_path, "IMG_99.jpg", [[1, 1]], name="bad.json")
    elif case == "not_numeric":
        labelme(tmp_path, "IMG_1.jpg", [["a", 1]], name="bad.json")
    elif case == "outside":
        labelme(tmp_path, "IMG_1.jpg", [[1, 1], [W + 0.5, 2]], name="bad.json")
    elif case == "size":
        labelme(tmp_path, "IMG_1.jpg", [[1, 1]], name="bad.json", imageWidth=W * 2)
    elif case == "twice":
        labelme(tmp_path, "IMG_2.jpg", [[1, 1]], name="bad.json")
    elif case == "broken_json":
        bad.write_text("{not json")
    elif case == "no_points_field":
        bad = tmp_path / "IMG_1.json"
        bad.write_text(json.dumps({"heads": []}))
    elif case == "bad_cvat":
        bad = tmp_path / "bad.xml"
        bad.write_text('<annotations><image name="IMG_1.jpg" width="64" height="48"><points points="1,2;3"/></image></annotations>')
    elif case == "suffix":
        bad = tmp_path / "bad.txt"
        bad.write_text("1,2")
    err = run_error(capsys, project, good, bad)
    assert expected in err and bad.name in err and "\n" not in err, err  # one line: the bad file's


def test_every_bad_file_of_a_batch_is_named_with_its_reason(project, tmp_path, capsys):
    """Four bad files among three good ones: four lines, one per bad file in batch order, each
    naming the file and its reason; a later file repeating a good file's image is the bad one."""
    good = [labelme(tmp_path, "IMG_1.jpg", [[1, 1]]), labelme(tmp_path, "IMG_2.jpg", [[2, 2]])]
    (tmp_path / "broken.json").write_text("{not json")
    outside = labelme(tmp_path, "IMG_3.jpg", [[W + 3, 1]], name="outside.json")
    unknown = labelme(tmp_path, "IMG_99.jpg", [[1, 1]], name="unknown.json")
    again = labelme(tmp_path, "IMG_1.jpg", [[4, 4]], name="again.json")
    files = [good[0], tmp_path / "broken.json", outside, good[1], unknown, again,
             labelme(tmp_path, "IMG_4.jpg", [[3, 3]])]
    lines = run_error(capsys, project, *files).splitlines()
    assert len(lines) == 4, lines
    for line, (name, reason) in zip(lines, [("broken.json", "unreadable JSON"), ("outside.json", "lies outside the image"),
                                            ("unknown.json", "is not an image of this project"),
                                            ("again.json", "annotated twice in this batch (also in")]):
        assert f"{tmp_path / name}: " in line and reason in line, line
    assert load_state(project)["annotations"] == {}


def test_changed_image_and_already_annotated(project, tmp_path, capsys):
    assert main(["ingest", str(project), str(labelme(tmp_path, "IMG_1.jpg", [[1, 1]]))]) == 0
    err = run_error(capsys, project, labelme(tmp_path, "IMG_1.jpg", [[2, 2]], name="again.json"))
    assert "already annotated" in err and "--replace" in err and "again.json" in err
    assert main(["ingest", str(project), str(tmp_path / "again.json"), "--replace"]) == 0
    assert load_state(project)["annotations"]["IMG_1.jpg"]["points"] == [[2.0, 2.0]]
    write_image(Path(load_state(project)["images_root"]) / "IMG_3.jpg", H, W, seed=99)  # the file changes
    err = run_error(capsys, project, labelme(tmp_path, "IMG_3.jpg", [[1, 1]]))
    assert "IMG_3.json" in err and "changed since init" in err


def test_ingest_of_images_not_proposed_is_allowed_and_reported(project, tmp_path, capsys):
    assert main(["propose", str(project), "--batch", "2", "--seed", "3"]) == 0
    proposed = load_state(project)["rounds"][0]["proposed"]
    other = next(r["path"] for r in load_state(project)["images"] if r["path"] not in proposed)
    capsys.readouterr()
    assert main(["ingest", str(project), str(labelme(tmp_path, other, [[1, 1]], name="x.json"))]) == 0
    assert f"{other} was not proposed in round 1 (never proposed)" in capsys.readouterr().out


def test_concurrent_ingests_keep_every_annotation(project, tmp_path):
    names = ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg", "IMG_4.jpg"]
    files = [labelme(tmp_path, name, [[n + 1.0, n + 2.0]]) for n, name in enumerate(names)]
    env = {**os.environ, HOLD_ENV: "0.4", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "orchestrator.annotate", "ingest", str(project), str(f)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for f in files]
    assert all(p.wait(timeout=120) == 0 for p in procs), [p.stderr.read() for p in procs]
    annotations = load_state(project)["annotations"]
    assert sorted(annotations) == names
    assert [annotations[n]["points"] for n in names] == [[[n + 1.0, n + 2.0]] for n in range(4)]


def test_killed_propose_leaves_the_previous_round_and_reruns_the_same(project, monkeypatch):
    assert main(["propose", str(project), "--batch", "2", "--seed", "1"]) == 0
    before = (project / STATE).read_bytes()
    first_round = sorted(p.name for p in (project / "rounds" / "round_001").rglob("*"))

    def killed(*_a, **_k):
        raise KeyboardInterrupt("killed while writing the round")

    monkeypatch.setattr(propose_module, "write_round_files", killed)
    with pytest.raises(KeyboardInterrupt):
        main(["propose", str(project), "--batch", "2", "--seed", "1"])
    monkeypatch.undo()
    assert (project / STATE).read_bytes() == before
    assert sorted(p.name for p in (project / "rounds").iterdir()) == ["round_001"]
    assert sorted(p.name for p in (project / "rounds" / "round_001").rglob("*")) == first_round
    assert main(["propose", str(project), "--batch", "2", "--seed", "1"]) == 0
    rounds = load_state(project)["rounds"]
    assert rounds[1]["proposed"] == rounds[0]["proposed"]  # nothing annotated: the same initial draw
