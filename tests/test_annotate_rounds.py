"""Annotation-team mode on a real collection (issue 14's "done when"): ShanghaiTech B images
copied into a plain folder, three rounds with a simulated annotator returning the true points
as LabelMe JSON and CVAT XML; the proposals equal the AL-AC trial runner's selections for the
same seed and settings (round 3 also cross-validates, by default, on its 8 annotated images),
and ``export`` gives back exactly the ingested points."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from conftest import real_dataset_dir

from orchestrator.alac.trial import ALACTrial
from orchestrator.annotate.__main__ import main
from orchestrator.annotate.formats import cvat_xml
from orchestrator.annotate.project import load_state
from orchestrator.annotate.propose import DEFAULT_CONFIG
from orchestrator.config import load_config
from orchestrator.data import open_dataset

SEED = 5
SETTINGS = ["dataset.max_side=128", "model.width=0.125", "alac.initial=4", "alac.per_cycle=4", "alac.budget=12",
            "alac.alignment=false", "alac.train.epochs=1", "alac.train.max_steps_per_epoch=3"]


def write_points_csv(path: Path, points: np.ndarray) -> None:
    path.write_text("".join(f"{float(x)!r},{float(y)!r}\n" for x, y in points))


def make_collections(shb: Path, tmp: Path, n_train: int = 16, n_test: int = 2):
    """A ``folder`` dataset for the trial (train/ + test/ with points) and the team's plain
    images folder (the same train files, no points); returns (trial root, images, truth)."""
    trial_root, images, truth = tmp / "trial_data", tmp / "team_images", {}
    for split, n in (("train", n_train), ("test", n_test)):
        (trial_root / split).mkdir(parents=True)
        for item in open_dataset("shanghaitech_b", shb, split).items[:n]:
            name = item.image_path.name
            shutil.copyfile(item.image_path, trial_root / split / name)
            write_points_csv((trial_root / split / name).with_suffix(".csv"), item.points)
            if split == "train":
                images.mkdir(exist_ok=True)
                shutil.copyfile(item.image_path, images / name)
                truth[name] = item.points
    return trial_root, images, truth


def trial_selections(trial_root: Path, out: Path) -> list[list[str]]:
    """The trial's labeled images per cycle as file names: [initial, cycle-1 picks, cycle-2 picks]."""
    config = load_config(DEFAULT_CONFIG, "smoke", SETTINGS + ["dataset.name=folder", f"dataset.root={trial_root}",
                                                              "dataset.options={}"], seed=SEED)
    rows = ALACTrial(config, out, log=lambda _m: None).run()
    to_name = {}
    for item in open_dataset("folder", trial_root, "train").items:
        to_name[item.id] = item.image_path.name
    first = json.loads(rows.iloc[0]["labeled_ids"])
    picks = [json.loads(rows.iloc[c]["selected_ids"]) for c in (0, 1)]
    return [[to_name[i] for i in ids] for ids in [first, *picks]]


def annotate_round(project: Path, number: int, truth: dict, fmt: str) -> list[Path]:
    """The simulated annotator: fill the round's LabelMe tasks (or write one CVAT XML)."""
    state = load_state(project)
    proposed = state["rounds"][number - 1]["proposed"]
    folder = project / "rounds" / f"round_{number:03d}"
    if fmt == "cvat":
        sizes = {r["path"]: r for r in state["images"]}
        path = folder / "cvat_returned.xml"
        path.write_text(cvat_xml([(rel, sizes[rel]["height"], sizes[rel]["width"], truth[rel]) for rel in proposed]))
        return [path]
    files = []
    for task in sorted((folder / "labelme").glob("*.json")):
        doc = json.loads(task.read_text())
        rel = Path(doc["imagePath"]).name
        doc["shapes"] = [{"label": "head", "points": [[float(x), float(y)]], "shape_type": "point"} for x, y in truth[rel]]
        returned = folder / f"returned_{task.name}"
        returned.write_text(json.dumps(doc))
        files.append(returned)
    return files


def test_three_rounds_equal_the_trial_and_export_returns_the_points(tmp_path, data_root, capsys):
    shb = real_dataset_dir(data_root, "ShanghaiTech/part_B")
    trial_root, images, truth = make_collections(shb, tmp_path)
    expected = trial_selections(trial_root, tmp_path / "trial")
    project = tmp_path / "project"
    sets = [a for s in SETTINGS for a in ("--set", s)]
    assert main(["init", str(project), "--images", str(images), "--config", str(DEFAULT_CONFIG), "--scale", "smoke",
                 "--seed", str(SEED), *sets]) == 0
    for number, fmt in ((1, "labelme"), (2, "cvat"), (3, "labelme")):
        if number == 2:  # same project + seed -> same proposals: a copy proposes round 2 alike
            twin = tmp_path / "twin"
            shutil.copytree(project, twin)
            assert main(["propose", str(twin), "--batch", "4"]) == 0
        assert main(["propose", str(project), "--batch", "4"]) == 0
        state = load_state(project)
        assert state["rounds"][-1]["proposed"] == expected[number - 1], f"round {number}"
        if number == 2:
            assert load_state(twin)["rounds"][-1]["proposed"] == expected[1]
        folder = project / "rounds" / f"round_{number:03d}"
        for name in ("proposals.csv", "tasks.csv", "contact_sheet.png"):
            assert (folder / name).is_file()
        assert len(list((folder / "labelme").glob("*.json"))) == 4
        if number < 3:
            assert main(["ingest", str(project), *map(str, annotate_round(project, number, truth, fmt))]) == 0
    assert (project / "rounds" / "round_003" / "scores.csv").is_file()
    rounds = load_state(project)["rounds"]
    assert rounds[1]["cv"] is None  # 4 annotated: below the default's 6
    cv = rounds[2]["cv"]
    assert (cv["folds"], cv["images"]) == (3, 8) and np.isfinite([cv["mae"], cv["rmse"], cv["mean_baseline_mae"]]).all()
    with open(project / "rounds" / "round_003" / "cv.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["image"] for r in rows) == sorted(expected[0] + expected[1])
    assert all(int(r["annotated"]) == len(truth[r["image"]]) for r in rows)
    assert sorted(int(r["fold"]) for r in rows) == [0, 0, 0, 1, 1, 1, 2, 2]
    errors = [abs(float(r["predicted_count"]) - int(r["annotated"])) for r in rows]
    assert abs(np.mean(errors) - cv["mae"]) < 1e-5
    assert main(["ingest", str(project), *map(str, annotate_round(project, 3, truth, "labelme"))]) == 0
    capsys.readouterr()
    assert main(["status", str(project)]) == 0
    out = capsys.readouterr().out
    assert "12/16 images annotated" in out
    assert f"current model's cross-validated MAE: {cv['mae']:.2f} (3-fold over the 8 images round 3 trained on" in out
    assert main(["status", str(project), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cv"] == {"round": 3, **cv} and [r["cv_mae"] for r in report["rounds"]] == [None, None, cv["mae"]]
    out = tmp_path / "export"
    assert main(["export", str(project), str(out)]) == 0
    exported = open_dataset("folder", out, "all")
    assert len(exported.items) == 12
    for item in exported.items:
        np.testing.assert_array_equal(item.points, truth[item.image_path.name])
