"""Evaluate a counting network on one split of a dataset: whole-image inference, MAE and RMSE.

    python -m orchestrator.evaluate --model csrnet --weights PartB.pth.tar \\
        --dataset shanghaitech_b --root $COUNTING_DATA_ROOT/ShanghaiTech/part_B --split test

Each image is normalised for its network (``models.normalize``), run whole at batch size 1
(the network zero-pads it to a multiple of 8), and its predicted count is the sum of the
density map. The last stdout line is exactly ``MAE <x> RMSE <y> N <n>`` (RMSE is what the papers
print as "MSE"); notes go to stderr, and so does a progress line when stderr is a terminal (in a
log: none). ``--out`` writes one CSV row per image. Exit status 2 on bad input (missing file,
unknown dataset, weights that do not fit).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from models import MODEL_CLASSES
from orchestrator.core import progress
from orchestrator.core.counting import mae_rmse, predict_count
from orchestrator.core.weights import load_model
from orchestrator.data import Item, open_dataset

__all__ = ["EvaluationResult", "ImageResult", "evaluate_image", "evaluate_items", "main", "predict_count", "summarise"]


@dataclasses.dataclass(frozen=True)
class ImageResult:
    """One evaluated image: ``true_count`` = annotated points inside the image,
    ``predicted_count`` = sum of the predicted density; ``height``/``width`` in pixels."""

    id: str
    height: int
    width: int
    true_count: int
    predicted_count: float

    @property
    def abs_error(self) -> float:
        return abs(self.predicted_count - self.true_count)


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """Per-image results and the summary ``mae``, ``rmse`` (people per image) over ``n`` images."""

    images: list[ImageResult]
    mae: float
    rmse: float

    @property
    def n(self) -> int:
        return len(self.images)

    def summary_line(self) -> str:
        return f"MAE {self.mae:.4f} RMSE {self.rmse:.4f} N {self.n}"


def summarise(images: Sequence[ImageResult]) -> EvaluationResult:
    """MAE and RMSE (float64) of the given per-image results; at least one image."""
    if not images:
        raise ValueError("no images to evaluate")
    mae, rmse = mae_rmse([r.predicted_count for r in images], [r.true_count for r in images])
    return EvaluationResult(list(images), mae, rmse)


def evaluate_items(
    model: nn.Module, items: Sequence[Item], device: torch.device | str = "cpu", show_progress: bool = False
) -> EvaluationResult:
    """Evaluate ``model`` (a CSRNet or CSSCCNN, put in eval mode here) on dataset items;
    ``show_progress``: a progress line on stderr when it is a terminal (the command line's choice)."""
    model.eval().to(device)
    results = []
    with progress.terminal_progress(show_progress), progress.bar("evaluate", len(items), unit="img") as line:
        for item in items:
            results.append(evaluate_image(model, item, device))
            line.advance()
    return summarise(results)


def evaluate_image(model: nn.Module, item: Item, device: torch.device | str = "cpu") -> ImageResult:
    """One image, whole, through ``model`` (already on ``device``, in eval mode)."""
    image = item.load_image()
    return ImageResult(id=item.id, height=int(image.shape[0]), width=int(image.shape[1]), true_count=item.count,
                       predicted_count=predict_count(model, image, device))


def write_per_image_csv(path: str | Path, result: EvaluationResult) -> Path:
    """One row per image: ``id,height,width,true_count,predicted_count,abs_error``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "height", "width", "true_count", "predicted_count", "abs_error"])
        for r in result.images:
            writer.writerow([r.id, r.height, r.width, r.true_count, f"{r.predicted_count:.6f}", f"{r.abs_error:.6f}"])
    return path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.evaluate",
        description="Whole-image evaluation of a counting network: prints 'MAE <x> RMSE <y> N <n>' last.",
    )
    parser.add_argument("--model", required=True, choices=sorted(MODEL_CLASSES), help="network architecture")
    parser.add_argument(
        "--weights", required=True, type=Path,
        help="our checkpoint, a CSRNet-pytorch .pth/.pth.tar, a CSS-CCNN reference checkpoint, or .npz",
    )
    parser.add_argument("--dataset", required=True, help="dataset name (python -m orchestrator.data list)")
    parser.add_argument("--root", default=None, help="the dataset's own folder")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--limit", type=_positive_int, default=None, help="evaluate only the first N images")
    parser.add_argument("--out", type=Path, default=None, help="write per-image results to this CSV")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress line (it is shown only when stderr is a terminal)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        dataset = open_dataset(args.dataset, args.root, args.split)
        items = list(dataset)[: args.limit] if args.limit is not None else list(dataset)
        if not items:
            raise ValueError(f"{args.dataset}/{args.split} has no images under {args.root}")
        loaded = load_model(args.model, args.weights)
        if "density_head." in loaded.missing_parts:
            raise ValueError(f"{args.weights} holds no density head (a stage-1 rotation checkpoint?)")
        print(
            f"{args.model} width {loaded.width} ({loaded.naming} naming) from {args.weights}; "
            f"{len(items)} images of {args.dataset}/{args.split}",
            file=sys.stderr,
        )
        result = evaluate_items(loaded.model, items, device,
                                show_progress=progress.stderr_is_terminal() and not args.no_progress)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out is not None:
        write_per_image_csv(args.out, result)
        print(f"per-image results: {args.out}", file=sys.stderr)
    print(result.summary_line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
