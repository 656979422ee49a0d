"""How does one AL-AC training on a fixed labeled set learn, epoch by epoch? The question behind
choosing ``alac.train`` settings per scale, answered on data that is not the reported test split.

Run: ``.venv/bin/python benchmarks/learning_curve.py --config configs/alac/reduced_shb.yaml
--labeled 30 --epochs 24 --every 6 --set dataset.holdout=80 [--set alac.train.ema_decay=0.99]``
(on generated crowds, another ``dataset.options.seed`` is a validation world instead).

The first ``--labeled`` images of the trials' initial draw (seed ``--seed``) are trained on with
the config's ``alac.train`` settings, in chunks of ``--every`` epochs (each chunk one
``run_training`` call continuing the previous one's weights and optimiser, as AL-AC cycles do),
and the test split (the held-out images with ``dataset.holdout``) is scored after every chunk.
One line per chunk: MAE, its ratio to the Mean baseline measured in the same run (every image
predicted as the labeled images' mean count), the predicted count range, Pearson r between
predicted and true counts, the mean bias, and the MAE after the best single rescaling of the
predictions (what is left once the output scale is right). Then:

* ``BENCH curve_final_mae_over_mean``: the last chunk's MAE / the Mean baseline's;
* ``BENCH curve_swing_mae_over_mean``: the largest rise of that ratio from one chunk to the next
  (0 when the curve only falls): how far stopping at an unlucky step can cost;
* ``BENCH curve_seconds_per_epoch``: training wall time per epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.alac.scoring import score_ids  # noqa: E402
from orchestrator.alac.train import run_training  # noqa: E402
from orchestrator.alac.trial import initial_model, initial_selection, train_job  # noqa: E402
from orchestrator.config import load_config  # noqa: E402
from orchestrator.core.counting import mae_rmse  # noqa: E402
from orchestrator.core.samples import load_sample, open_split  # noqa: E402
from orchestrator.core.tensors import to_bytes  # noqa: E402


def curve_line(predicted: np.ndarray, true: np.ndarray, mean_mae: float) -> tuple[float, str]:
    """``(MAE / Mean MAE, the chunk's description)`` of predicted vs true counts."""
    mae = mae_rmse(predicted, true)[0]
    scale = float(predicted @ true / max(predicted @ predicted, 1e-12))
    r = float(np.corrcoef(predicted, true)[0, 1]) if predicted.std() > 0 else float("nan")
    text = (f"MAE {mae:.2f} ({mae / mean_mae:.2f}x Mean) predicted {predicted.min():.0f}-{predicted.max():.0f} "
            f"r {r:.3f} bias {np.mean(predicted - true):+.1f} best rescale x{scale:.2f} -> MAE "
            f"{np.mean(np.abs(scale * predicted - true)):.2f}")
    return mae / mean_mae, text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/alac/demo.yaml")
    p.add_argument("--labeled", type=int, default=12)
    p.add_argument("--epochs", type=int, default=36)
    p.add_argument("--every", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    cfg = load_config(args.config, "demo", args.set, seed=args.seed)
    cfg = dataclasses.replace(cfg, alac=dataclasses.replace(
        cfg.alac, train=dataclasses.replace(cfg.alac.train, epochs=args.every)))
    pool, test = open_split(cfg.dataset, cfg.dataset.train_split), open_split(cfg.dataset, cfg.dataset.test_split)
    labeled = initial_selection(pool.ids, args.seed, args.labeled)
    counts = [load_sample(pool.by_id(i), cfg.dataset).count for i in labeled]
    true = np.array([load_sample(test.by_id(i), cfg.dataset).count for i in test.ids], np.float64)
    mean_mae = mae_rmse(np.full(len(true), np.mean(counts)), true)[0]
    print(f"{args.labeled} labeled (mean count {np.mean(counts):.1f}), {len(true)} evaluated, Mean baseline MAE "
          f"{mean_mae:.2f}", flush=True)
    state = (to_bytes(initial_model(cfg, None, log=lambda _m: None)[0].state_dict()), None, None, None)
    ratios, seconds = [], 0.0
    for chunk in range(args.epochs // args.every):
        result = run_training(train_job(cfg, cfg.dataset, labeled, [], False, args.seed * 1000 + chunk, state))
        state, seconds = (result.model_state, result.optimizer_state, None, None), seconds + result.seconds
        scorer = dict(dataset=cfg.dataset, split=cfg.dataset.test_split, width=cfg.model.width,
                      model_state=result.model_state, classifier_state=None, levels=cfg.alac.levels,
                      torch_threads=cfg.ray.torch_threads)
        ratio, text = curve_line(np.asarray(score_ids(scorer, test.ids, cfg.ray)["count"], np.float64), true, mean_mae)
        ratios.append(ratio)
        print(f"epoch {(chunk + 1) * args.every:3d} loss {result.mean_loss:.4g} {text}", flush=True)
    swing = max([0.0] + [b - a for a, b in zip(ratios, ratios[1:])])
    print(f"BENCH curve_final_mae_over_mean {ratios[-1]:.3f} x")
    print(f"BENCH curve_swing_mae_over_mean {swing:.3f} x")
    print(f"BENCH curve_seconds_per_epoch {seconds / max(args.epochs // args.every * args.every, 1):.2f} s")
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    sys.exit(code)
