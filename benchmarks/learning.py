"""Do the embedded default's counters learn? Each ratio is measured in this run against a
baseline measured in the same run (lower is better; 1.0 = learned nothing beyond a constant).

Run: ``.venv/bin/python benchmarks/learning.py [--seeds 3] [--threads N]`` (default: the configs'
own ``ray.torch_threads``, 1, i.e. exactly what ``make demo`` trains; other thread counts change
the floating-point reduction order and, at this scale, can change a trial's outcome).

* ``demo_alac_mae_over_mean``: final-cycle test MAE of the demo's AL-AC trials (PSSW and random
  selection, seeds 0..S-1) over the MAE of the Mean baseline of the same trials (every test
  image predicted as the mean count of the trial's labeled images); mean of the per-trial ratios.
* ``demo_cssccnn_mae_over_mean``: mean test MAE of the demo's CSS-CCNN trials over the mean MAE
  of its Mean baseline (the prior's mean count for every image), same seeds.
* ``ssl_init_mae_ratio``: mean final MAE of PSSW trials started from the label-free
  (self-supervised) front end over the same trials started from random (He) weights.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.config import load_config  # noqa: E402
from orchestrator.trial import make_trial  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALAC, CSS = ROOT / "configs/alac/demo.yaml", ROOT / "configs/cssccnn/demo.yaml"


def final_row(path: Path, seed: int, work: Path, *overrides: str) -> dict:
    config = load_config(path, "demo", list(overrides), seed=seed)
    name = "_".join([path.parent.name, str(seed), *(o.replace("=", "-") for o in overrides)])
    rows = make_trial(config, work / name, log=lambda _m: None, cache_dir=work / "cache").run()
    return rows.iloc[-1].to_dict()


def bench(name: str, value: float, unit: str = "x") -> None:
    print(f"BENCH {name} {value:.3f} {unit}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    threads = f"ray.torch_threads={args.threads}" if args.threads else "ray.torch_threads=1"
    seeds = range(args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        ratios, finals = [], {}
        for strategy in ("pssw", "random"):
            for seed in seeds:
                row = final_row(ALAC, seed, work, threads, f"alac.strategy={strategy}")
                ratios.append(row["mae"] / row["mean_baseline_mae"])
                finals[(strategy, seed)] = row["mae"]
                print(f"# alac {strategy} seed {seed}: MAE {row['mae']:.2f}, Mean baseline "
                      f"{row['mean_baseline_mae']:.2f}", flush=True)
        bench("demo_alac_mae_over_mean", float(np.mean(ratios)))
        css = [final_row(CSS, s, work, threads)["mae"] for s in seeds]
        mean = [final_row(CSS, s, work, threads, "cssccnn.baseline=mean")["mae"] for s in seeds]
        print(f"# cssccnn MAE {np.round(css, 2).tolist()}, Mean baseline {np.round(mean, 2).tolist()}", flush=True)
        bench("demo_cssccnn_mae_over_mean", float(np.mean(css) / np.mean(mean)))
        ssl = [final_row(ALAC, s, work, threads, "alac.strategy=pssw", "model.start=self_supervised")["mae"]
               for s in seeds]
        print(f"# alac pssw from the label-free start: MAE {np.round(ssl, 2).tolist()} vs random start "
              f"{[round(finals[('pssw', s)], 2) for s in seeds]}", flush=True)
        bench("ssl_init_mae_ratio", float(np.mean(ssl) / np.mean([finals[("pssw", s)] for s in seeds])))
        print(f"# {time.perf_counter() - started:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
