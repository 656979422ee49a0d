"""Paper-scale GPU figures of the two trial runners, measured with the trials' own code
(:func:`orchestrator.alac.train.run_training` and :func:`orchestrator.cssccnn.stages.run_stage`).

    COUNTING_DATA_ROOT=/data .venv/bin/python benchmarks/gpu_cycle.py [--epochs 3] [--amp]
    .venv/bin/python benchmarks/gpu_cycle.py --smoke     # the same code, tiny, on the CPU

* AL-AC: one cycle on ShanghaiTech B (``ShanghaiTech/part_B``), CSRNet width 1.0, the last
  cycle's shape (``--labeled`` labeled images, the rest of the pool unlabeled, alignment with
  latent MixUp), 1200 reference patches per side, minibatches of two. It trains ``--epochs`` of
  the paper's 100 epochs; seconds per epoch are the median of the epochs after the first (the
  first includes loading and CUDA warm-up), and the paper's cycle is extrapolated as 100 x that.
  ``images_per_s`` counts training patches per second.
* CSS-CCNN: one stage-2 epoch (Sinkhorn matching, frozen features, batch 32 crops of 224) on
  ShanghaiTech A (``ShanghaiTech/part_A``), width 1.0, including the label-free validation
  passes before and after the epoch (they are part of every epoch of the real stage).

Without CUDA (and without ``--smoke``) it says so and exits 0. ``--smoke``: synthetic images,
width 0.125, a few steps, on the CPU, so that this script cannot rot (tests/test_gpu_ready.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The project root first: benchmarks/models.py and benchmarks/selection.py must not shadow the packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import os
import statistics
import time

import torch

from models import CSSCCNN, CSRNet
from orchestrator.alac.train import TrainJob, run_training
from orchestrator.config import ALConfig, CSSConfig, DatasetConfig, TrainConfig
from orchestrator.core.samples import open_split
from orchestrator.core.tensors import to_bytes
from orchestrator.cssccnn.stages import StageJob, run_stage
from orchestrator.cssccnn.validate import build_css_prior

PAPER_EPOCHS = 100


def _datasets(smoke: bool) -> tuple[DatasetConfig, DatasetConfig]:
    if smoke:
        synthetic = DatasetConfig(name="synthetic", options={"n_train": 8, "n_test": 1, "height": 128, "width": 128})
        return synthetic, synthetic
    return (DatasetConfig(name="shanghaitech_b", root="ShanghaiTech/part_B"),
            DatasetConfig(name="shanghaitech_a", root="ShanghaiTech/part_A"))


def bench_alac(dataset: DatasetConfig, args, device: torch.device) -> dict:
    ids = open_split(dataset, dataset.train_split).ids
    width, labeled = (0.125, 2) if args.smoke else (1.0, args.labeled)
    train = TrainConfig(lr=1e-7, epochs=args.epochs, reference_total=8 if args.smoke else 1200,
                        max_steps_per_epoch=3 if args.smoke else None)
    job = TrainJob(dataset=dataset, labeled_ids=ids[:labeled], unlabeled_ids=ids[labeled:], alignment=True,
                   width=width, train=train, alac=ALConfig(train=train), seed=0,
                   model_state=to_bytes(CSRNet(width=width).state_dict()), torch_threads=args.threads, amp=args.amp)
    ends = []
    result = run_training(job, device=device, progress=lambda _: ends.append(time.perf_counter()))
    deltas = [b - a for a, b in zip(ends, ends[1:])]
    per_epoch = statistics.median(deltas) if deltas else result.seconds
    steps_per_epoch = result.steps / args.epochs
    return {"seconds_per_epoch": per_epoch, "images_per_s": 2 * steps_per_epoch / per_epoch,
            "steps_per_epoch": steps_per_epoch, "first_epoch_seconds": result.seconds - sum(deltas),
            "labeled": labeled, "unlabeled": len(ids) - labeled, "loss": result.mean_loss}


def bench_css_stage2(dataset: DatasetConfig, args, device: torch.device) -> dict:
    ids = open_split(dataset, dataset.train_split).ids
    css, width = CSSConfig(), 1.0
    if args.smoke:
        css = dataclasses.replace(css, crop=64, prior_samples=64, sinkhorn_max_iter=50,
                                  stage2=dataclasses.replace(css.stage2, batch=2, steps_per_epoch=2))
        width = 0.125
    schedule = dataclasses.replace(css.stage2, epochs=1)
    holdout = max(1, round(css.holdout_fraction * len(ids)))
    job = StageJob(kind="sinkhorn", dataset=dataset, css=css, width=width, seed=0, train_ids=ids[holdout:],
                   holdout_ids=ids[:holdout], labeled_ids=[], model_state=to_bytes(CSSCCNN(width=width).state_dict()),
                   freeze_features=True, schedule=schedule, prior=build_css_prior(css, len(ids)),
                   torch_threads=args.threads)
    result = run_stage(job, device=device)
    return {"seconds_per_epoch": result.seconds, "steps": result.steps, "train_images": len(ids) - holdout,
            "holdout_images": holdout}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic run of the same code on the CPU")
    parser.add_argument("--epochs", type=int, default=None, help="AL-AC epochs to time (default 3; smoke 1)")
    parser.add_argument("--labeled", type=int, default=30, help="labeled SHB images of the cycle (the paper's budget)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast in AL-AC (ray.amp); CUDA only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (1 if args.smoke else 3)
    if args.smoke:
        device, args.amp = torch.device("cpu"), False
    elif not torch.cuda.is_available():
        print("# gpu_cycle: no CUDA device here (torch.cuda.is_available() is False); nothing measured. "
              "--smoke runs the same code tiny on the CPU.")
        return 0
    else:
        device = torch.device("cuda")
        if not os.environ.get("COUNTING_DATA_ROOT"):
            print("# gpu_cycle: set COUNTING_DATA_ROOT (holding ShanghaiTech/part_A and part_B)", file=sys.stderr)
            return 2
    shb, sha = _datasets(args.smoke)
    alac = bench_alac(shb, args, device)
    css = bench_css_stage2(sha, args, device)
    memory = torch.cuda.max_memory_allocated() / 2 ** 30 if device.type == "cuda" else 0.0
    print(f"# {'smoke (synthetic, width 0.125, CPU)' if args.smoke else 'paper scale'} on {device}, amp {args.amp}")
    print(f"# AL-AC cycle: {alac['labeled']} labeled + {alac['unlabeled']} unlabeled images, "
          f"{alac['steps_per_epoch']:.0f} steps of 2 patches per epoch, {args.epochs} epoch(s) timed "
          f"(first {alac['first_epoch_seconds']:.1f} s incl. loading); the paper's {PAPER_EPOCHS} epochs "
          f"extrapolate to {PAPER_EPOCHS * alac['seconds_per_epoch'] / 60:.1f} min per cycle")
    print(f"# CSS-CCNN stage 2: {css['steps']} steps over {css['train_images']} images, validation on "
          f"{css['holdout_images']} held-out images before and after (included)")
    print(f"BENCH gpu_alac_seconds_per_epoch {alac['seconds_per_epoch']:.3f} s")
    print(f"BENCH gpu_alac_images_per_s {alac['images_per_s']:.1f} patches/s")
    print(f"BENCH gpu_cssccnn_stage2_seconds_per_epoch {css['seconds_per_epoch']:.3f} s")
    print(f"BENCH gpu_memory_gib {memory:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
