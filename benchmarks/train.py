"""Training throughput: Ray Train (TorchTrainer, one worker) vs the in-process loop — the same
run_training function, same job, same CPU count, one run.

    .venv/bin/python benchmarks/train.py [--steps 150] [--side 256] [--width 0.25]

BENCH train_ray_vs_local_throughput is end to end (Ray includes starting the worker group and
returning the checkpoint); _in_loop compares the steps/s measured inside the loop.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The project root first: benchmarks/models.py and benchmarks/selection.py (named by the issues)
# must not shadow the packages of the same name when this script is run as a file.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import tempfile
import time

from _setup import start_local_ray

from models import CSRNet
from orchestrator.alac.train import TrainJob, run_training
from orchestrator.config import ALConfig, DatasetConfig, RayConfig, TrainConfig
from orchestrator.core.execution import train_with_ray
from orchestrator.core.tensors import to_bytes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.25)
    args = parser.parse_args()
    dataset = DatasetConfig(name="synthetic", options={"n_train": 10, "n_test": 1, "height": args.side, "width": args.side})
    job = TrainJob(dataset=dataset, labeled_ids=[f"train/{i:06d}" for i in range(10)], unlabeled_ids=[],
                   alignment=False, width=args.width,
                   train=TrainConfig(lr=1e-6, epochs=1, reference_total=2 * args.steps), alac=ALConfig(),
                   seed=0, model_state=to_bytes(CSRNet(width=args.width).state_dict()), torch_threads=2)
    t = time.perf_counter()
    local = run_training(job)
    local_s = time.perf_counter() - t
    ray, stop = start_local_ray(2)
    try:
        with tempfile.TemporaryDirectory() as storage:
            t = time.perf_counter()
            remote = train_with_ray(job, RayConfig(train_workers=1, cpus_per_worker=2), storage, "bench", loop=run_training)
            ray_s = time.perf_counter() - t
    finally:
        stop()
    same = remote.model_state == local.model_state
    print(f"# {local.steps} steps of 2 patches {args.side // 2}x{args.side // 2}, width {args.width}: local {local_s:.1f} s "
          f"(loop {local.seconds:.1f} s), Ray Train {ray_s:.1f} s (loop {remote.seconds:.1f} s); identical weights: {same}")
    print(f"BENCH train_ray_vs_local_throughput {local_s / ray_s:.2f} x")
    print(f"BENCH train_ray_vs_local_throughput_in_loop {local.seconds / remote.seconds:.2f} x")
    print(f"BENCH train_ray_overhead_seconds {ray_s - remote.seconds:.1f} s")


if __name__ == "__main__":
    main()
