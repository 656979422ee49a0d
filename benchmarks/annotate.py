"""How long annotation-team mode's ``propose`` takes, and what it costs over the trial's own cycle.

A collection of generated crowds (demo size, 128 x 128) is written to a plain folder as PNGs;
``init`` makes a project, round 1 proposes the initial images (the trials' initial rule, no
training), a simulated annotator returns their true points as CSV, and round 2 is timed: train
on the annotated images, score every unannotated one, select with PSSW, write the round
(tables, LabelMe tasks, contact sheet). The baseline, measured in the same run, is the AL-AC
trial's first cycle on the same crowds with the same settings (train + score + select).

Run: ``.venv/bin/python benchmarks/annotate.py [--images 200] [--epochs 1]``

* ``annotate_propose_seconds_per_1000_images``: round 2's wall time scaled to 1,000 unannotated
  images (training is fixed cost, so this over-states large collections slightly).
* ``annotate_propose_over_trial_cycle``: round 2's wall time / the trial cycle's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.alac.trial import ALACTrial  # noqa: E402
from orchestrator.annotate.__main__ import main as annotate  # noqa: E402
from orchestrator.annotate.project import load_state  # noqa: E402
from orchestrator.config import load_config  # noqa: E402
from orchestrator.data import open_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/alac/demo.yaml"


def bench(name: str, value: float, unit: str) -> None:
    print(f"BENCH {name} {value:.3f} {unit}", flush=True)


def run(argv: list[str]) -> None:
    if annotate(argv) != 0:
        raise SystemExit(f"annotate {argv[0]} failed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    settings = [f"dataset.options.n_train={args.images}", f"alac.train.epochs={args.epochs}", "alac.alignment=false",
                "alac.budget=8", "ray.torch_threads=1"]
    items = open_dataset("synthetic", None, "train", n_train=args.images, n_test=4, seed=0, height=128, width=128).items
    with tempfile.TemporaryDirectory() as tmp:
        work, truth = Path(tmp), {}
        (work / "images").mkdir()
        for item in items:
            name = item.id.replace("/", "_")
            cv2.imwrite(str(work / "images" / f"{name}.png"), cv2.cvtColor(item.load_image(), cv2.COLOR_RGB2BGR))
            truth[name] = item.points
        sets = [a for s in settings for a in ("--set", s)]
        project = work / "project"
        run(["init", str(project), "--images", str(work / "images"), "--config", str(CONFIG), "--seed", "0", *sets])
        run(["propose", str(project)])
        (work / "answers").mkdir()
        answers = []
        for rel in load_state(project)["rounds"][-1]["proposed"]:
            stem = Path(rel).stem
            answers.append(work / "answers" / f"{stem}.csv")
            answers[-1].write_text("".join(f"{float(x)!r},{float(y)!r}\n" for x, y in truth[stem]))
        run(["ingest", str(project), *map(str, answers)])
        started = time.perf_counter()
        run(["propose", str(project)])
        propose_s = time.perf_counter() - started
        config = load_config(CONFIG, "demo", settings, seed=0)
        row = ALACTrial(config, work / "trial", log=lambda _m: None).run().iloc[0]
        cycle_s = row["train_seconds"] + row["score_seconds"] + row["select_seconds"]
    unannotated = args.images - config.alac.initial
    print(f"# round 2: {propose_s:.1f} s for {unannotated} unannotated images; trial cycle {cycle_s:.1f} s", flush=True)
    bench("annotate_propose_seconds_per_1000_images", propose_s * 1000 / unannotated, "s")
    bench("annotate_propose_over_trial_cycle", propose_s / cycle_s, "x")


if __name__ == "__main__":
    main()
