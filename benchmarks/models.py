"""Speed of the networks on this machine (CPU unless --device says otherwise).

    .venv/bin/python benchmarks/models.py [--repeats 3] [--demo-width 0.25] [--device cpu]

Prints one ``BENCH <name> <value> <unit>`` line per figure:

* CSRNet forward and forward+backward(+SGD step) images/s on 256x256 inputs, batch 1, at
  width 1.0 (the paper) and the demo width, and the demo width's speed-up over width 1.0
  (the baseline measured in the same run);
* the CSS-CCNN stage-2 training step on 32 crops of 224 (frozen FEN, BatchNorm in eval mode, SGD
  on the density head) at width 1.0 and the demo width, against the baseline of the same step
  with the FEN trainable. The loss is a stand-in for the Sinkhorn loss (squared error of the
  3 x 3 cell counts per crop to fixed numbers) so that this file depends on models/ only;
  the Sinkhorn cost itself is benchmarked with ot/.

Timings are the median of ``--repeats`` runs after one warm-up run (on a CPU the width-1.0
CSS-CCNN steps skip the warm-up and the unfrozen baseline is timed once). Other processes on
the machine make them noisy. About 1.5 minutes on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# This file is called models.py: drop its own folder from the import path so that
# ``import models`` finds the project's package, not this script.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import torch  # noqa: E402

from models import CSSCCNN, CSRNet  # noqa: E402


def median_seconds(fn: Callable[[], None], repeats: int, sync: Callable[[], None], warmup: bool = True) -> float:
    if warmup:
        fn()
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, value: float, unit: str) -> None:
    print(f"BENCH {name} {value:.4g} {unit}", flush=True)


def csrnet_figures(width: float, repeats: int, device: torch.device, sync) -> tuple[float, float]:
    model = CSRNet(width=width, generator=torch.Generator().manual_seed(0)).to(device)
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1)).to(device)
    target = torch.zeros(1, 1, 32, 32, device=device)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-7, momentum=0.95, weight_decay=5e-4)

    def forward():
        with torch.inference_mode():
            model(x)

    def train_step():
        optimiser.zero_grad()
        ((model(x) - target) ** 2).sum().backward()
        optimiser.step()

    model.eval()
    fwd = 1.0 / median_seconds(forward, repeats, sync)
    model.train()
    fwdbwd = 1.0 / median_seconds(train_step, repeats, sync)
    bench(f"csrnet_w{width}_fwd_img_s_256", fwd, "img/s")
    bench(f"csrnet_w{width}_fwdbwd_img_s_256", fwdbwd, "img/s")
    return fwd, fwdbwd


def cssccnn_step_seconds(
    width: float, frozen: bool, repeats: int, device: torch.device, sync, warmup: bool = True
) -> float:
    model = CSSCCNN(width=width, generator=torch.Generator().manual_seed(0)).to(device)
    if frozen:
        model.freeze_features()
    model.train()
    crops = torch.randint(0, 256, (32, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    x = CSSCCNN.normalize(crops).to(device)
    cell_targets = torch.rand(32, 3, 3, generator=torch.Generator().manual_seed(3)).to(device)
    optimiser = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5, momentum=0.9, weight_decay=1e-4
    )

    def step():
        density = model(x)[:, 0, :24, :24]  # 28 x 28 output; the last 4 rows/columns are dropped
        cells = density.reshape(32, 3, 8, 3, 8).sum(dim=(2, 4))
        loss = 0.01 * ((cells - cell_targets) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return median_seconds(step, repeats, sync, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median)")
    parser.add_argument("--demo-width", type=float, default=0.25, help="width of the demo-scale networks")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"# torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads", flush=True)

    full_fwd, full_fwdbwd = csrnet_figures(1.0, args.repeats, device, sync)
    demo_fwd, demo_fwdbwd = csrnet_figures(args.demo_width, args.repeats, device, sync)
    bench(f"csrnet_w{args.demo_width}_fwd_speedup_vs_w1.0", demo_fwd / full_fwd, "x")
    bench(f"csrnet_w{args.demo_width}_fwdbwd_speedup_vs_w1.0", demo_fwdbwd / full_fwdbwd, "x")

    # Width-1.0 CSS-CCNN steps take many seconds on a CPU: no warm-up run (its first-call
    # overhead is small next to a step), and a single timed run for the unfrozen baseline.
    cpu = device.type == "cpu"
    stage2 = cssccnn_step_seconds(1.0, True, args.repeats, device, sync, warmup=not cpu)
    bench("cssccnn_w1.0_stage2_step_s_32x224", stage2, "s")
    unfrozen = cssccnn_step_seconds(1.0, False, 1 if cpu else args.repeats, device, sync, warmup=not cpu)
    bench("cssccnn_w1.0_unfrozen_step_s_32x224", unfrozen, "s")
    bench("cssccnn_w1.0_stage2_speedup_vs_unfrozen", unfrozen / stage2, "x")
    demo_stage2 = cssccnn_step_seconds(args.demo_width, True, args.repeats, device, sync)
    bench(f"cssccnn_w{args.demo_width}_stage2_step_s_32x224", demo_stage2, "s")


if __name__ == "__main__":
    main()
