"""Cross-validated MAE of a round: the folds, the --cv-folds rules, reproducibility, and that it
changes nothing of what the round proposes."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image
from test_annotate_ingest import H, W, labelme

from orchestrator.annotate.__main__ import main
from orchestrator.annotate.crossval import CV_FILE, fold_assignment, resolve_folds
from orchestrator.annotate.project import STATE, AnnotateError, load_state


@pytest.fixture(name="annotated")
def annotated_project(tmp_path) -> Path:
    """Ten small images, six of them annotated (1..6 heads each)."""
    for n in range(10):
        write_image(tmp_path / "images" / f"img_{n}.png", H, W, seed=n)
    project = tmp_path / "project"
    assert main(["init", str(project), "--images", str(tmp_path / "images"), "--scale", "smoke", "--seed", "4"]) == 0
    rng = np.random.default_rng(0)
    files = [labelme(tmp_path, f"img_{n}.png", rng.uniform(0, [W, H], size=(n + 1, 2)).tolist()) for n in range(6)]
    assert main(["ingest", str(project), *map(str, files)]) == 0
    return project


def test_resolve_folds():
    assert [resolve_folds(None, n) for n in (0, 5, 6, 40)] == [0, 0, 3, 3]
    assert resolve_folds(0, 40) == 0 and resolve_folds(4, 8) == 4
    with pytest.raises(AnnotateError, match="must be 0 \\(off\\) or at least 2, got 1"):
        resolve_folds(1, 40)
    with pytest.raises(AnnotateError, match="--cv-folds 4 needs at least 8 annotated images \\(two per fold\\), have 7"):
        resolve_folds(4, 7)


def test_folds_are_balanced_and_seeded():
    folds = fold_assignment(11, 3, seed=4, cycle=2)
    assert sorted(np.bincount(folds).tolist()) == [3, 4, 4]
    np.testing.assert_array_equal(folds, fold_assignment(11, 3, seed=4, cycle=2))
    assert not np.array_equal(folds, fold_assignment(11, 3, seed=5, cycle=2))


def test_cv_is_reproducible_and_leaves_the_proposals_alone(annotated, tmp_path, capsys):
    twins = {name: tmp_path / name for name in ("no_cv", "again")}
    for twin in twins.values():
        shutil.copytree(annotated, twin)
    assert main(["propose", str(annotated), "--batch", "2"]) == 0
    assert main(["propose", str(twins["no_cv"]), "--batch", "2", "--cv-folds", "0"]) == 0
    assert main(["propose", str(twins["again"]), "--batch", "2", "--cv-folds", "3"]) == 0
    entry, no_cv, again = (load_state(p)["rounds"][0] for p in (annotated, twins["no_cv"], twins["again"]))
    assert entry["proposed"] == no_cv["proposed"] == again["proposed"]
    assert entry["predicted"] == no_cv["predicted"]
    assert no_cv["cv"] is None and not (twins["no_cv"] / no_cv["folder"] / CV_FILE).exists()
    cv = entry["cv"]
    assert (cv["folds"], cv["images"]) == (3, 6) and cv["seconds"] > 0
    assert {k: v for k, v in cv.items() if k != "seconds"} == {k: v for k, v in again["cv"].items() if k != "seconds"}
    assert (annotated / entry["folder"] / CV_FILE).read_bytes() == (twins["again"] / again["folder"] / CV_FILE).read_bytes()
    assert "3-fold CV MAE" in capsys.readouterr().out
    # cv.csv, and the Mean baseline by hand: each held-out image predicted as the mean heads of the other folds
    with open(annotated / entry["folder"] / CV_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    state = load_state(annotated)
    heads = np.array([len(state["annotations"][r["image"]]["points"]) for r in rows], dtype=float)
    folds = np.array([int(r["fold"]) for r in rows])
    np.testing.assert_array_equal(folds, fold_assignment(6, 3, seed=4, cycle=1))
    assert [r["image"] for r in rows] == [f"img_{n}.png" for n in range(6)]  # training order: collection order here
    assert heads.tolist() == [int(r["annotated"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert np.mean([abs(float(r["predicted_count"]) - h) for r, h in zip(rows, heads)]) == pytest.approx(cv["mae"], abs=1e-5)
    baseline = np.array([heads[folds != folds[i]].mean() for i in range(6)])
    assert cv["mean_baseline_mae"] == pytest.approx(np.abs(baseline - heads).mean(), abs=1e-12)


@pytest.mark.parametrize("value, expected", [("1", "--cv-folds must be 0 (off) or at least 2, got 1"),
                                             ("4", "--cv-folds 4 needs at least 8 annotated images (two per fold), have 6")])
def test_bad_cv_folds_exit_2_before_training(annotated, capsys, value, expected):
    before = (annotated / STATE).read_bytes()
    assert main(["propose", str(annotated), "--cv-folds", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {expected}"
    assert (annotated / STATE).read_bytes() == before and not (annotated / "rounds").exists()
