"""``python -m orchestrator.data``: list datasets, inspect one, or preview the synthetic crowds.

    python -m orchestrator.data list
    python -m orchestrator.data inspect --dataset shanghaitech_b --root DIR [--split test] [--json]
    python -m orchestrator.data demo [--out results/demo]

``inspect`` exits 0 when every image and annotation is readable (handled problems such as
dropped out-of-image points are listed as warnings), 1 when some item is unusable, 2 when the
dataset cannot be opened at all (wrong root or layout).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .base import DatasetError
from .inspect import format_report, has_errors, inspect_dataset
from .registry import DATASETS


def parse_options(pairs: list[str]) -> dict:
    """``["fold=2", "train_range=1,50"]`` -> ``{"fold": 2, "train_range": (1, 50)}``."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DatasetError(f"--option expects key=value, got {pair!r}")
        parts = [v.strip() for v in value.split(",")]
        parsed = [int(v) if v.lstrip("-").isdigit() else v for v in parts]
        options[key] = tuple(parsed) if len(parsed) > 1 else parsed[0]
    return options


def cmd_list(_args) -> int:
    for name, spec in sorted(DATASETS.items()):
        print(f"{name:<16}{'/'.join(spec.splits):<26}{spec.description}")
    return 0


def cmd_inspect(args) -> int:
    try:
        report = inspect_dataset(
            args.dataset, args.root, [args.split] if args.split else None,
            decode=not args.headers_only, progress=not args.json, **parse_options(args.option),
        )
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 1 if has_errors(report) else 0


def cmd_demo(args) -> int:
    from .preview import run_demo

    return run_demo(Path(args.out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered datasets").set_defaults(func=cmd_list)
    p = sub.add_parser("inspect", help="statistics and problems of a dataset")
    p.add_argument("--dataset", required=True, help="registered name (see 'list')")
    p.add_argument("--root", default=None, help="the dataset's own folder in its original layout")
    p.add_argument("--split", default=None, help="one split (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--headers-only", action="store_true", help="read image headers only, do not decode pixels")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option, e.g. fold=2 for ucf_cc_50 (repeatable)")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("demo", help="inspect the synthetic crowds and write a preview figure")
    p.add_argument("--out", default="results/demo", help="folder for the preview PNG")
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
