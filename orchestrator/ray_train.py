"""Running a per-worker training loop under Ray Train's ``TorchTrainer``.

A loop is any module-level function ``loop(job, rank=..., world_size=..., device=...) -> result``
written once for both paths: :func:`orchestrator.train.run_training` (AL-AC, the default) and
:func:`orchestrator.css_train.run_stage` (CSS-CCNN stages). Each worker runs the same loop with
its rank and the world size; the process group (gloo on CPU, NCCL on GPU) is set up by Ray
Train. Rank 0 reports the loop's result as a checkpoint; the driver reads it back, so in-process
and Ray training return the same result object.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

from orchestrator.config import RayConfig
from orchestrator.train import run_training

RESULT_FILE = "train_result.pkl"
#: Numeric result attributes reported to Ray Train as metrics when the result has them.
METRIC_FIELDS = ("steps", "mean_loss", "seconds", "chosen_epoch", "epochs_run")


def _train_worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    job = loop_config["job"]
    loop = loop_config.get("loop", run_training)
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    result = loop(job, rank=rank, world_size=world_size, device=ray.train.torch.get_device())
    metrics = {name: getattr(result, name) for name in METRIC_FIELDS
               if isinstance(getattr(result, name, None), (int, float))}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            (Path(tmp) / RESULT_FILE).write_bytes(pickle.dumps(result))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_with_ray(job, ray_config: RayConfig, storage_path: str, name: str,
                   loop: Callable = run_training):
    """Run ``loop(job, ...)`` data-parallel on ``ray_config.train_workers`` Ray Train workers and
    return rank 0's result. ``loop`` must be importable by the workers (a module-level function)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": ray_config.cpus_per_worker}
    if ray_config.use_gpu:
        resources["GPU"] = ray_config.gpus_per_worker
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"job": job, "loop": loop},
        scaling_config=ScalingConfig(num_workers=ray_config.train_workers, use_gpu=ray_config.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(storage_path=str(Path(storage_path).resolve()), name=name),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    with result.checkpoint.as_directory() as directory:
        return pickle.loads((Path(directory) / RESULT_FILE).read_bytes())
