"""Running :func:`orchestrator.train.run_training` under Ray Train's ``TorchTrainer``.

Each worker runs the same loop with its rank and the world size; the process group (gloo on
CPU, NCCL on GPU) is set up by Ray Train. Rank 0 reports the final states as a checkpoint;
the driver reads them back, so in-process and Ray training return the same ``TrainResult``.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

from orchestrator.config import RayConfig
from orchestrator.train import TrainJob, TrainResult, run_training

RESULT_FILE = "train_result.pkl"


def _train_worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    job: TrainJob = loop_config["job"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    result = run_training(job, rank=rank, world_size=world_size, device=ray.train.torch.get_device())
    metrics = {"steps": result.steps, "mean_loss": result.mean_loss, "seconds": result.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            (Path(tmp) / RESULT_FILE).write_bytes(pickle.dumps(result))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_with_ray(job: TrainJob, ray_config: RayConfig, storage_path: str, name: str) -> TrainResult:
    """Run ``job`` data-parallel on ``ray_config.train_workers`` Ray Train workers."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": ray_config.cpus_per_worker}
    if ray_config.use_gpu:
        resources["GPU"] = ray_config.gpus_per_worker
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"job": job},
        scaling_config=ScalingConfig(num_workers=ray_config.train_workers, use_gpu=ray_config.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(storage_path=str(Path(storage_path).resolve()), name=name),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    with result.checkpoint.as_directory() as directory:
        return pickle.loads((Path(directory) / RESULT_FILE).read_bytes())
