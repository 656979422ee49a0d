"""``python -m orchestrator.annotate``: annotation-team mode.

    python -m orchestrator.annotate init PROJECT --images DIR [--seed-annotations FILE ...]
        [--config YAML] [--scale demo] [--set key=value ...] [--seed 0] [--seconds-per-head 1.2]
    python -m orchestrator.annotate propose PROJECT [--batch m] [--cv-folds K] [--seed S] [--config YAML] [--scale S]
        [--set k=v ...]
    python -m orchestrator.annotate ingest PROJECT FILE ... [--replace]
    python -m orchestrator.annotate status PROJECT [--json]
    python -m orchestrator.annotate export PROJECT OUT

Exit status: 0 done, 2 bad input (one line on stderr naming the file or setting and what was
expected; for a batch of annotation files one line per bad file, then one saying nothing was
ingested; nothing changed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestrator.annotate.ingest import apply_batch, ingest, validate_batch
from orchestrator.annotate.project import DEFAULT_SECONDS_PER_HEAD, STATE, AnnotateError, BatchError, locked, new_state, save_state
from orchestrator.annotate.propose import project_config
from orchestrator.annotate.report import export, format_status, status
from orchestrator.config import ConfigError
from orchestrator.core import progress
from orchestrator.data.base import DatasetError


def init_project(project: Path, images: Path, seed_annotations: list[Path], config: dict, seed: int,
                 seconds_per_head: float) -> dict:
    """Create ``project`` over ``images`` (optionally with already annotated images), after
    checking the config and every seed annotation; nothing is written when one is bad."""
    project = Path(project)
    if (project / STATE).exists():
        raise AnnotateError(f"{project}: already a project ({STATE} exists)")
    if not seconds_per_head > 0:
        raise AnnotateError(f"--seconds-per-head must be > 0, got {seconds_per_head}")
    state = new_state(Path(images), seed, config, seconds_per_head)
    project_config(state)  # a bad config fails now, not at the first propose
    if seed_annotations:
        batch, _ = validate_batch(state, seed_annotations, replace=False)
        state = apply_batch(state, batch)
    project.mkdir(parents=True, exist_ok=True)
    with locked(project):
        save_state(project, state)
    return state


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="AL-AC YAML (default: configs/alac/demo.yaml); its dataset section gives max_side")
    p.add_argument("--scale", help="config scale: smoke, demo or paper (default demo)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--seed", type=int, help="seed of the draws and the training")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.annotate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="create a project from a folder of images")
    p.add_argument("project", type=Path)
    p.add_argument("--images", type=Path, required=True, help="folder of images (nested folders allowed)")
    p.add_argument("--seed-annotations", type=Path, nargs="+", default=[], help="annotation files to start from")
    p.add_argument("--seconds-per-head", type=float, default=DEFAULT_SECONDS_PER_HEAD)
    _config_args(p)
    p = sub.add_parser("propose", help="train on the annotated images and propose the next batch")
    p.add_argument("project", type=Path)
    p.add_argument("--batch", type=int, help="images to propose (default alac.initial, then alac.per_cycle)")
    p.add_argument("--cv-folds", type=int, metavar="K",
                   help="K-fold cross-validated MAE of the round's training on the annotated images (default 3 once "
                        "at least 6 are annotated, else none; 0 = off; K needs at least 2K annotated images)")
    p.add_argument("--seconds-per-head", type=float)
    _config_args(p)
    p = sub.add_parser("ingest", help="take annotation files back (LabelMe, CVAT XML, Label Studio, VIA, CSV/JSON)")
    p.add_argument("project", type=Path)
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--replace", action="store_true", help="overwrite images annotated before")
    p = sub.add_parser("status", help="rounds, annotations, minutes, held-out and cross-validated MAE")
    p.add_argument("project", type=Path)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("export", help="the annotated images as a folder dataset")
    p.add_argument("project", type=Path)
    p.add_argument("out", type=Path)
    return parser


def run(args) -> int:
    if args.command == "init":
        config = {"path": args.config, "scale": args.scale, "set": list(args.set)}
        state = init_project(args.project, args.images, args.seed_annotations, config, args.seed or 0,
                             args.seconds_per_head)
        print(f"{args.project}: {len(state['images'])} images, {len(state['annotations'])} annotated")
    elif args.command == "propose":
        from orchestrator.annotate.propose import propose

        propose(args.project, args.batch, args.seed, args.config, args.scale, args.set, args.seconds_per_head,
                cv_folds=args.cv_folds)
    elif args.command == "ingest":
        done, notes = ingest(args.project, args.files, args.replace)
        for note in notes:
            print(note)
        print(f"ingested {len(done)} images, {sum(done.values())} heads")
    elif args.command == "status":
        report = status(args.project)
        print(json.dumps(report, indent=1) if args.json else format_status(report))
    elif args.command == "export":
        print(f"exported {export(args.project, args.out)} annotated images to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with progress.terminal_progress(progress.stderr_is_terminal()):  # pool scoring's line, on a terminal
            return run(args)
    except BatchError as e:
        for problem in e.problems:
            print("error: " + " ".join(problem.split()), file=sys.stderr)
        print(f"error: nothing ingested: {len(e.problems)} of {e.total} annotation files are bad", file=sys.stderr)
        return 2
    except (AnnotateError, ConfigError, DatasetError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)  # one line, whatever the message
        return 2


if __name__ == "__main__":
    sys.exit(main())
