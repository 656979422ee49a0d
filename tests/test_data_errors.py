"""Bad input: a clear DatasetError naming the culprit, never a bare traceback from scipy or PIL;
and the inspector's report, JSON shape and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
from conftest import write_image
from test_data_formats import make_shanghaitech

from orchestrator.data import DatasetError, open_dataset
from orchestrator.data.inspect import inspect_dataset


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "orchestrator.data", *args], capture_output=True, text=True)


def test_unknown_dataset_lists_known_names():
    with pytest.raises(DatasetError, match=r"unknown dataset 'shanghai'.*shanghaitech_a"):
        open_dataset("shanghai", "/nowhere")


def test_missing_root_is_named(tmp_path):
    with pytest.raises(DatasetError, match=f"root folder not found: {tmp_path / 'nope'}"):
        open_dataset("shanghaitech_b", tmp_path / "nope", "train")


def test_wrong_layout_says_what_was_expected(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match=r"train_data.*\nexpected layout: ROOT/\{train,test\}_data/images"):
        open_dataset("shanghaitech_a", tmp_path, "train")


def test_unknown_split(tmp_path):
    with pytest.raises(DatasetError, match=r"unknown split 'val'"):
        open_dataset("shanghaitech_a", tmp_path, "val")


def test_corrupt_jpeg_names_the_file(tmp_path):
    make_shanghaitech(tmp_path)
    bad = tmp_path / "train_data/images/IMG_2.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated JPEG
    item = open_dataset("shanghaitech_a", tmp_path, "train")[1]
    with pytest.raises(DatasetError, match="IMG_2.jpg"):
        item.load_image()


def test_mat_without_expected_key(tmp_path):
    make_shanghaitech(tmp_path)
    scipy.io.savemat(tmp_path / "test_data/ground-truth/GT_IMG_3.mat", {"points": np.zeros((2, 2))})
    with pytest.raises(DatasetError, match=r"GT_IMG_3.mat: key 'image_info' not found \(keys present: \['points'\]\)"):
        open_dataset("shanghaitech_a", tmp_path, "test")[2].points


def test_mismatched_names_listed(tmp_path):
    make_shanghaitech(tmp_path)
    (tmp_path / "train_data/ground-truth/GT_IMG_1.mat").rename(tmp_path / "train_data/ground-truth/GT_IMG_9.mat")
    with pytest.raises(DatasetError) as err:
        open_dataset("shanghaitech_a", tmp_path, "train")
    message = str(err.value)
    assert "1 image(s) without annotation" in message and "GT_IMG_1.mat" in message
    assert "1 annotation(s) without image" in message and "GT_IMG_9.mat" in message


def test_points_outside_are_dropped_and_kept_for_reporting(tmp_path):
    write_image(tmp_path / "a.png", height=48, width=64)
    (tmp_path / "a.csv").write_text("x,y\n0,0\n64,48\n64.5,10\n-1,3\n10,48.01\n")
    item = open_dataset("folder", tmp_path, "all")[0]
    np.testing.assert_array_equal(item.points, [[0, 0], [64, 48]])  # the border counts as inside
    np.testing.assert_array_equal(item.outside_points, [[64.5, 10], [-1, 3], [10, 48.01]])
    assert item.count == 2 and len(item.raw_points) == 5


def test_nan_points_rejected(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "a.json").write_text('{"points": [[1, NaN]]}')
    with pytest.raises(DatasetError, match="a.json.*NaN"):
        open_dataset("folder", tmp_path, "all")[0].points


def test_inspector_reports_every_problem(tmp_path):
    make_shanghaitech(tmp_path)
    (tmp_path / "train_data/images/IMG_2.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "train_data/ground-truth/GT_IMG_3.mat").unlink()
    report = inspect_dataset("shanghaitech_a", tmp_path, progress=False)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert {p["item"] for p in errors} == {None, "train/IMG_2", "train/IMG_3"}
    assert report["splits"]["train"] == {
        "images": 3, "readable": 1, "points": 3, "min_points": 3, "mean_points": 3.0, "max_points": 3,
        "dropped_outside_points": 0,
    }
    assert report["splits"]["test"]["points"] == 8


def test_inspect_cli_json_and_exit_codes(tmp_path):
    make_shanghaitech(tmp_path)
    ok = run_cli("inspect", "--dataset", "shanghaitech_b", "--root", str(tmp_path), "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["dataset"] == "shanghaitech_b" and report["problems"] == []
    assert report["splits"]["train"]["images"] == 3 and report["splits"]["train"]["points"] == 8

    (tmp_path / "test_data/images/IMG_1.jpg").write_bytes(b"broken")
    bad = run_cli("inspect", "--dataset", "shanghaitech_b", "--root", str(tmp_path), "--split", "test")
    assert bad.returncode == 1 and "IMG_1.jpg" in bad.stdout

    layout = run_cli("inspect", "--dataset", "ucf_qnrf", "--root", str(tmp_path))
    assert layout.returncode == 2 and "expected layout" in layout.stderr and "Traceback" not in layout.stderr
