"""VIA CSV ingest (the file VIA 2's "Export Annotations (as csv)" writes), shapes that are not
points (ignored, each reported), and Label Studio image references."""

from __future__ import annotations

import json

import pytest
from conftest import write_image
from test_annotate_ingest import H, W, labelme, make_project, run_error

from orchestrator.annotate.__main__ import main
from orchestrator.annotate.formats import label_studio_ref, read_annotation_file
from orchestrator.annotate.project import load_state


def via_csv(images: dict[str, list[dict]], sizes: dict[str, int] | None = None, hash_header: bool = False) -> str:
    """The text VIA 2's ``pack_via_metadata('csv')`` writes: the header, then per image one row
    per region (``region_count``, ``region_id``, the shape and region attributes as JSON with
    doubled quotes) or, without regions, one row ``,0,0,"{}","{}"``."""
    def field(obj) -> str:
        return '"' + json.dumps(obj, separators=(",", ":")).replace('"', '""') + '"'

    lines = [("#" if hash_header else "") + "filename,file_size,file_attributes,region_count,region_id,"
             "region_shape_attributes,region_attributes"]
    for name, regions in images.items():
        prefix = f'{name},{(sizes or {}).get(name, 1234)},"{{}}"'
        if not regions:
            lines.append(prefix + ',0,0,"{}","{}"')
        for i, shape in enumerate(regions):
            lines.append(",".join([prefix, str(len(regions)), str(i), field(shape), field({"label": "head"})]))
    return "\n".join(lines)


@pytest.fixture(name="project")
def project_fixture(tmp_path):
    return make_project(tmp_path)


def point(x, y) -> dict:
    return {"name": "point", "cx": x, "cy": y}


@pytest.mark.parametrize("hash_header", [False, True])
def test_via_csv_ingests_points_ignores_other_shapes_and_reports_them(project, tmp_path, capsys, hash_header):
    rect = {"name": "rect", "x": 3, "y": 4, "width": 10, "height": 12}
    circle = {"name": "circle", "cx": 20, "cy": 20, "r": 5}
    path = tmp_path / "via_export.csv"
    path.write_text(via_csv({"IMG_1.jpg": [point(1.5, 2.25), rect, point(63, 47), circle],
                             "IMG_7.png": [point(0, 0)],
                             "IMG_2.jpg": []}, hash_header=hash_header))
    records = {r.ref: r for r in read_annotation_file(path)}
    assert sorted(records) == ["IMG_1.jpg", "IMG_2.jpg", "IMG_7.png"]
    assert records["IMG_1.jpg"].ignored == {"rect": 1, "circle": 1}
    capsys.readouterr()
    assert main(["ingest", str(project), str(path)]) == 0
    out = capsys.readouterr().out
    annotations = load_state(project)["annotations"]
    assert annotations["IMG_1.jpg"]["points"] == [[1.5, 2.25], [63.0, 47.0]]
    assert annotations["cam2/IMG_7.png"]["points"] == [[0.0, 0.0]]  # matched by its unique file name
    assert annotations["IMG_2.jpg"]["points"] == []
    assert "IMG_1.jpg: ignored shapes that are not points (1 circle, 1 rect)" in out
    assert "IMG_2.jpg has no heads" in out
    assert "ingested 3 images, 3 heads" in out


@pytest.mark.parametrize("text, expected", [
    (via_csv({"IMG_1.jpg": [point("a", 2)]}), "expected a number, got 'a'"),
    (via_csv({"IMG_1.jpg": [point(1, 2)]}).replace('"{""name""', '"{name""', 1), "line 2 (IMG_1.jpg): region_shape_attributes"),
    (via_csv({"IMG_1.jpg": [point(1, 2)]}).replace("IMG_1.jpg", "IMG,1.jpg"), "line 2 has 8 columns, expected 7"),
    (via_csv({"IMG_1.jpg": [point(W + 1, 2)]}), "lies outside the image"),
    (via_csv({"IMG_1.jpg": [point(1, 2), {}]}), "line 3 (IMG_1.jpg): the region has no shape_attributes"),
])
def test_via_csv_errors_name_the_file_and_line(project, tmp_path, capsys, text, expected):
    path = tmp_path / "via.csv"
    path.write_text(text)
    err = run_error(capsys, project, path)
    assert expected in err and "via.csv" in err, err


def test_label_studio_refs():
    assert label_studio_ref({"image": "/data/local-files/?d=team%20images/cam2/IMG_7.png"}) == "team images/cam2/IMG_7.png"
    assert label_studio_ref({"image": "/data/upload/1/ab12cd34-IMG_4.jpg"}) == "/data/upload/1/ab12cd34-IMG_4.jpg"
    assert label_studio_ref({"image": "/data/local-files/?d=x/IMG_1.jpg", "project_image": "IMG_1.jpg"}) == "IMG_1.jpg"
    assert label_studio_ref({"text": "caption", "image": "a.jpg"}) == "a.jpg"  # the image, not the first string


def test_a_path_tail_names_the_image_where_the_file_name_is_ambiguous(tmp_path, capsys):
    """A tool's path from elsewhere (a Label Studio document root, a CVAT share) matches the
    image whose path under the images root is its longest tail; a bare shared name does not."""
    for folder in ("a", "b"):
        write_image(tmp_path / "images" / folder / "x.jpg", H, W, seed=len(folder))
    proj = tmp_path / "project"
    assert main(["init", str(proj), "--images", str(tmp_path / "images"), "--scale", "smoke"]) == 0
    doc = labelme(tmp_path, "/mnt/share/team_images/b/x.jpg", [[5, 6]], name="tail.json")
    assert main(["ingest", str(proj), str(doc)]) == 0
    assert load_state(proj)["annotations"] == {"b/x.jpg": {"points": [[5.0, 6.0]], "file": str(doc.resolve()), "round": 0}}
    err = run_error(capsys, proj, labelme(tmp_path, "/mnt/share/x.jpg", [[1, 1]], name="bare.json"))
    assert "is ambiguous" in err and "bare.json" in err
