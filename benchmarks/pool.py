"""Pool scoring throughput: Ray Data actor pool vs the in-process loop, same scorer class, same
images, same model, same CPU count, one run.

    .venv/bin/python benchmarks/pool.py [--images 400] [--side 256] [--width 0.25]

BENCH pool_ray_vs_local_throughput: 2 CPUs each (2 actors x 1 thread vs 1 process x 2 threads),
end to end (Ray includes actor start-up and shipping the weights once through the object store).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The project root first: benchmarks/models.py and benchmarks/selection.py (named by the issues)
# must not shadow the packages of the same name when this script is run as a file.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import time

import torch
from _setup import start_local_ray

from models import CSRNet
from orchestrator.alac.scoring import score_ids
from orchestrator.config import DatasetConfig, RayConfig
from orchestrator.core.samples import open_split
from orchestrator.core.tensors import to_bytes

LOCAL = RayConfig(score_actors=0, score_batch_size=4)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.25)
    args = parser.parse_args()
    dataset = DatasetConfig(name="synthetic", options={"n_train": args.images, "n_test": 1,
                                                       "height": args.side, "width": args.side})
    ids = open_split(dataset, "train").ids
    state = to_bytes(CSRNet(width=args.width).state_dict())

    def kwargs(threads):
        return dict(dataset=dataset, split="train", width=args.width, model_state=state, torch_threads=threads)

    score_ids(kwargs(2), ids[:2], LOCAL)  # warm caches and imports
    t = time.perf_counter()
    local = score_ids(kwargs(2), ids, LOCAL)
    local_s = time.perf_counter() - t
    t = time.perf_counter()
    score_ids(kwargs(1), ids, LOCAL)
    local1_s = time.perf_counter() - t

    ray, stop = start_local_ray(2)
    try:
        t = time.perf_counter()
        remote = score_ids(kwargs(1), ids, RayConfig(score_actors=2, score_batch_size=4, cpus_per_actor=1))
        ray_s = time.perf_counter() - t
        t = time.perf_counter()
        score_ids(kwargs(1), ids, RayConfig(score_actors=1, score_batch_size=4, cpus_per_actor=1))
        ray1_s = time.perf_counter() - t
    finally:
        stop()
    assert list(remote["id"]) == list(local["id"])
    max_diff = float(abs(remote["count"] - local["count"]).max())
    print(f"# {len(ids)} images {args.side}x{args.side}, CSRNet width {args.width}; local 2 threads {local_s:.1f} s, "
          f"local 1 thread {local1_s:.1f} s, Ray 2 actors {ray_s:.1f} s, Ray 1 actor {ray1_s:.1f} s; "
          f"max count difference {max_diff:.2e}")
    print(f"BENCH pool_ray_vs_local_throughput {local_s / ray_s:.2f} x")
    print(f"BENCH pool_ray_vs_local_throughput_1cpu {local1_s / ray1_s:.2f} x")
    print(f"BENCH pool_local_img_s {len(ids) / local_s:.2f} img/s")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
