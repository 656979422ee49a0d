"""``make demo`` until the sweep exists: inspect the synthetic crowds, build their count-exact
density targets, and write a preview figure (images with head points, density maps)."""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.core.files import write_atomic

from .density import block_sum, density_map
from .inspect import format_report, inspect_dataset
from .registry import get_spec, open_dataset

DEMO_OPTIONS = {"n_train": 40, "n_test": 20, "seed": 0}


def write_preview(items, density_config, path: Path, columns: int = 4) -> None:
    """PNG with ``columns`` images (points overlaid) above their density maps; atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, columns, figsize=(3.2 * columns, 6.4))
    for col, item in enumerate(items[:columns]):
        image, points = item.load_image(), item.points
        density = density_map(points, image.shape[:2], density_config)
        axes[0, col].imshow(image)
        axes[0, col].scatter(points[:, 0], points[:, 1], s=4, c="red")
        axes[0, col].set_title(f"{item.id}: {len(points)} heads", fontsize=9)
        axes[1, col].imshow(density, cmap="jet")
        axes[1, col].set_title(f"density sum {density.sum():.2f}", fontsize=9)
        for ax in axes[:, col]:
            ax.axis("off")
    fig.tight_layout()
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    finally:
        plt.close(fig)


def run_demo(out_dir: Path) -> int:
    started = time.perf_counter()
    report = inspect_dataset("synthetic", None, progress=False, **DEMO_OPTIONS)
    print(format_report(report))
    spec = get_spec("synthetic")
    train = open_dataset("synthetic", None, "train", **DEMO_OPTIONS)
    worst = 0.0
    for item in train:
        density = density_map(item.points, item.size, spec.density)
        worst = max(worst, abs(block_sum(density).sum() - item.count) / max(item.count, 1))
    print(f"density targets: {len(train)} maps, worst relative count error after 8x8 block sums {worst:.2e}")
    preview = out_dir / "synthetic_preview.png"
    write_preview(list(train), spec.density, preview)
    print(f"preview written to {preview}  ({time.perf_counter() - started:.1f} s)")
    return 0 if worst < 1e-4 else 1
