"""Synthetic crowds: can a tiny CNN learn to count them on 2 CPU cores, and how fast do they render?

Run: ``.venv/bin/python benchmarks/synthetic_learn.py [--size 256] [--epochs 20] [--n-train 160]``

Prints, against baselines measured in the same run:

* ``synthetic_cnn_mae_ratio_vs_mean``: test MAE of a tiny fully convolutional density regressor
  (trained on per-cell counts at 1/8 resolution, count-exact via ``np.histogram2d``) divided by
  the MAE of predicting the training mean count (lower is better; 1.0 = learned nothing);
* ``synthetic_darkpixel_mae_ratio_vs_mean``: the same ratio for a linear fit of the count on the
  fraction of dark pixels, the shortcut the distractors and textures are there to defeat;
* ``synthetic_cnn_train_seconds``: wall time of the CNN training;
* ``synthetic_render_ms_256``: median time to render one 256x256 image with 400 heads, beside
  ``synthetic_render_ms_256_empty`` (same image, 0 heads) and ``synthetic_layout_ms_256``
  (points only, 400 heads).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.data.synthetic import SyntheticCrowdConfig, crowd_points, read_synthetic, render_crowd  # noqa: E402

CELL = 8  # output stride of the network: one predicted count per 8x8 pixel cell


def cell_counts(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H/8, W/8) float32`` head counts per cell; sums exactly to ``len(points)``."""
    counts, _, _ = np.histogram2d(
        points[:, 1], points[:, 0], bins=(height // CELL, width // CELL), range=((0, height), (0, width))
    )
    return counts.astype(np.float32)


def load_split(config: SyntheticCrowdConfig, split: str, n_train: int, n_test: int, seed: int):
    """``(images (N, 3, H, W) float32 in [0, 1], cell counts (N, 1, H/8, W/8) float32)``."""
    items = read_synthetic(split=split, n_train=n_train, n_test=n_test, seed=seed, config=config)
    images = np.stack([it.load_image() for it in items]).astype(np.float32) / 255.0
    targets = np.stack([cell_counts(it.points, config.height, config.width) for it in items])[:, None]
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(targets)


def tiny_counter() -> nn.Module:
    """Fully convolutional counter, about 33 k parameters: output at 1/8 resolution, one count per cell."""

    def conv(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]

    return nn.Sequential(
        *conv(3, 16), nn.MaxPool2d(2), *conv(16, 32), nn.MaxPool2d(2), *conv(32, 32), nn.MaxPool2d(2),
        *conv(32, 32), *conv(32, 32), nn.Conv2d(32, 1, 1),
    )


def train_counter(x_train, y_train, epochs: int, batch: int, seed: int) -> tuple[nn.Module, float]:
    """Adam + one-cycle schedule on summed squared cell-count error; returns (model, seconds)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = tiny_counter()
    n = len(x_train)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * -(-n // batch))
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for b in range(0, n, batch):
            idx = order[b : b + batch]
            x, y = x_train[idx], y_train[idx]
            if torch.rand(1, generator=generator).item() < 0.5:
                x, y = x.flip(3), y.flip(3)
            loss = ((net(x) - y) ** 2).sum() / len(idx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return net, time.perf_counter() - start


def dark_fraction(images: torch.Tensor) -> np.ndarray:
    """``(N,)`` fraction of pixels with luma below 0.25 (images ``(N, 3, H, W)`` in [0, 1])."""
    luma = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    return (luma < 0.25).float().mean(dim=(1, 2)).numpy().astype(np.float64)


def median_ms(fn, repeats: int) -> float:
    fn(0)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image height and width for the CNN run")
    parser.add_argument("--max-count", type=int, default=120, help="count range is 5..max-count")
    parser.add_argument("--n-train", type=int, default=160)
    parser.add_argument("--n-test", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    render_400 = SyntheticCrowdConfig(min_count=400, max_count=400)
    render_0 = SyntheticCrowdConfig(min_count=0, max_count=0)
    ms_400 = median_ms(lambda i: render_crowd(render_400, 0, i), 30)
    ms_0 = median_ms(lambda i: render_crowd(render_0, 0, i), 30)
    ms_layout = median_ms(lambda i: crowd_points(render_400, 0, i), 30)
    print("# render: 256x256, 400 heads (min_count = max_count = 400), median of 30")
    print(f"BENCH synthetic_render_ms_256 {ms_400:.2f} ms")
    print(f"BENCH synthetic_render_ms_256_empty {ms_0:.2f} ms")
    print(f"BENCH synthetic_layout_ms_256 {ms_layout:.2f} ms")

    config = SyntheticCrowdConfig(height=args.size, width=args.size, min_count=5, max_count=args.max_count)
    start = time.perf_counter()
    x_train, y_train = load_split(config, "train", args.n_train, args.n_test, args.seed)
    x_test, y_test = load_split(config, "test", args.n_train, args.n_test, args.seed)
    generate_seconds = time.perf_counter() - start
    train_counts = y_train.sum(dim=(1, 2, 3)).numpy().astype(np.float64)
    test_counts = y_test.sum(dim=(1, 2, 3)).numpy().astype(np.float64)

    net, train_seconds = train_counter(x_train, y_train, args.epochs, batch=16, seed=args.seed)
    with torch.no_grad():
        predicted = net(x_test).sum(dim=(1, 2, 3)).numpy().astype(np.float64)
    cnn_mae = float(np.abs(predicted - test_counts).mean())
    mean_mae = float(np.abs(train_counts.mean() - test_counts).mean())

    slope, intercept = np.polyfit(dark_fraction(x_train), train_counts, 1)
    dark_mae = float(np.abs(slope * dark_fraction(x_test) + intercept - test_counts).mean())

    print(
        f"# CNN: {args.size}x{args.size}, counts 5..{args.max_count} (log-uniform), "
        f"{args.n_train} train / {args.n_test} test images, {args.epochs} epochs, {args.threads} threads; "
        f"generated in {generate_seconds:.1f} s; test MAE cnn {cnn_mae:.2f}, dark-pixel fit {dark_mae:.2f}, "
        f"train mean {mean_mae:.2f} (test mean count {test_counts.mean():.1f})"
    )
    print(f"BENCH synthetic_cnn_mae_ratio_vs_mean {cnn_mae / mean_mae:.3f} x")
    print(f"BENCH synthetic_darkpixel_mae_ratio_vs_mean {dark_mae / mean_mae:.3f} x")
    print(f"BENCH synthetic_cnn_train_seconds {train_seconds:.1f} s")


if __name__ == "__main__":
    main()
