"""The evaluate CLI end to end: a tiny folder dataset written here, and ShanghaiTech B test
when COUNTING_DATA_ROOT is set. Weights are checkpoints these tests write from seeded networks."""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import real_dataset_dir
from PIL import Image

from models import CSSCCNN, CSRNet
from orchestrator.core.weights import save_checkpoint
from orchestrator.evaluate import main, predict_count

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^MAE (\S+) RMSE (\S+) N (\d+)$")
NARROW = 0.125


def _write_folder_dataset(root: Path) -> dict[str, tuple[np.ndarray, int]]:
    """``root/{train,test}/<stem>.png`` + ``<stem>.csv``; returns test id -> (image, count)."""
    rng = np.random.default_rng(0)
    expected = {}
    for split, sizes in (("train", [(16, 16)]), ("test", [(21, 30), (40, 24), (13, 9)])):
        (root / split).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / f"img{i}.png")
            count = i + 2
            points = np.column_stack([rng.uniform(0, w, count), rng.uniform(0, h, count)])
            with open(root / split / f"img{i}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["x", "y"])
                writer.writerows(points.tolist())
            if split == "test":
                expected[f"test/img{i}"] = (image, count)
    return expected


def _seeded_checkpoint(path: Path, cls) -> torch.nn.Module:
    model = cls(width=NARROW, generator=torch.Generator().manual_seed(42))
    with torch.no_grad():  # a small positive density that still depends on the image
        last = [m for m in model.density_head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(1e-3)
        last.bias.fill_(0.05)
    save_checkpoint(path, model)
    return model.eval()


@pytest.mark.parametrize("cls, name", [(CSRNet, "csrnet"), (CSSCCNN, "cssccnn")])
def test_evaluate_folder_dataset_matches_direct_inference(tmp_path, capsys, cls, name):
    expected = _write_folder_dataset(tmp_path / "data")
    model = _seeded_checkpoint(tmp_path / "model.pt", cls)
    out_csv = tmp_path / "out" / "per_image.csv"
    code = main([
        "--model", name, "--weights", str(tmp_path / "model.pt"), "--dataset", "folder",
        "--root", str(tmp_path / "data"), "--out", str(out_csv), "--no-progress",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    last = captured.out.strip().splitlines()[-1]
    match = SUMMARY.match(last)
    assert match, last

    predictions = {k: predict_count(model, img) for k, (img, _) in expected.items()}
    errors = np.array([predictions[k] - c for k, (_, c) in expected.items()])
    assert int(match.group(3)) == 3
    assert float(match.group(1)) == pytest.approx(np.abs(errors).mean(), abs=1e-4)
    assert float(match.group(2)) == pytest.approx(math.sqrt((errors**2).mean()), abs=1e-4)
    assert all(p > 0 for p in predictions.values()) and len(set(predictions.values())) == 3

    rows = list(csv.DictReader(open(out_csv)))
    assert [r["id"] for r in rows] == list(expected)
    for r in rows:
        image, count = expected[r["id"]]
        assert int(r["true_count"]) == count
        assert (int(r["height"]), int(r["width"])) == image.shape[:2]
        assert float(r["predicted_count"]) == pytest.approx(predictions[r["id"]], abs=1e-5)


def test_limit_and_errors(tmp_path, capsys):
    _write_folder_dataset(tmp_path / "data")
    _seeded_checkpoint(tmp_path / "model.pt", CSRNet)
    base = ["--weights", str(tmp_path / "model.pt"), "--dataset", "folder", "--root", str(tmp_path / "data"), "--no-progress"]
    assert main(["--model", "csrnet", *base, "--limit", "2"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("N 2")

    assert main(["--model", "cssccnn", *base]) == 2  # a CSRNet checkpoint for the wrong network
    assert "not 'cssccnn'" in capsys.readouterr().err

    missing = ["--model", "csrnet", "--weights", str(tmp_path / "none.pt"), "--dataset", "folder", "--root", str(tmp_path / "data")]
    assert main(missing) == 2
    assert "none.pt" in capsys.readouterr().err

    assert main(["--model", "csrnet", *base, "--split", "validation"]) == 2
    assert "validation" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", "csrnet", *base, "--limit", "0"])


def _run_cli(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.evaluate", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


def test_cli_entry_point_runs_as_a_module(tmp_path):
    _write_folder_dataset(tmp_path / "data")
    _seeded_checkpoint(tmp_path / "model.pt", CSSCCNN)
    proc = _run_cli([
        "--model", "cssccnn", "--weights", str(tmp_path / "model.pt"),
        "--dataset", "folder", "--root", str(tmp_path / "data"), "--split", "test",
    ])
    assert proc.returncode == 0, proc.stderr
    assert SUMMARY.match(proc.stdout.strip().splitlines()[-1])
    assert "\r" not in proc.stderr and "ETA" not in proc.stderr  # a pipe gets no progress line


@pytest.mark.realdata
def test_evaluate_shanghaitech_b_test_first_5(tmp_path, data_root):
    part_b = real_dataset_dir(data_root, "ShanghaiTech/part_B")  # skips when COUNTING_DATA_ROOT is unset
    _seeded_checkpoint(tmp_path / "csrnet.pt", CSRNet)
    proc = _run_cli([
        "--model", "csrnet", "--weights", str(tmp_path / "csrnet.pt"), "--dataset", "shanghaitech_b",
        "--root", str(part_b), "--split", "test", "--limit", "5", "--out", str(tmp_path / "per_image.csv"),
    ])
    assert proc.returncode == 0, proc.stderr
    match = SUMMARY.match(proc.stdout.strip().splitlines()[-1])
    assert match and int(match.group(3)) == 5
    rows = list(csv.DictReader(open(tmp_path / "per_image.csv")))
    assert len(rows) == 5
    assert all((int(r["height"]), int(r["width"])) == (768, 1024) for r in rows)
    true_counts = [int(r["true_count"]) for r in rows]
    assert all(c > 0 for c in true_counts)  # every SHB test image has people
    errors = np.array([float(r["predicted_count"]) - c for r, c in zip(rows, true_counts)])
    assert float(match.group(1)) == pytest.approx(np.abs(errors).mean(), abs=1e-3)
