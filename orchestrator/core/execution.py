"""One switch for "in this process or on Ray", used by both methods.

* :func:`ensure_ray` starts or joins Ray. Local Ray binds to 127.0.0.1; only an explicit
  address (or running under ``ray job submit``) joins a cluster. Ray 2.60 binds a single-node
  cluster to the machine's network address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is
  set before ``ray`` is imported (ENVIRONMENT.md); for every local start, never when joining, we
  set it and Ray's constant read from it at import (``ray_constants.ENABLE_RAY_CLUSTER``).
* :func:`run_loop` runs a per-worker training loop ``loop(job, rank=, world_size=, device=)``
  in-process (``ray.train_workers = 0``) or data-parallel under Ray Train's ``TorchTrainer``
  (gloo on CPU, NCCL on GPU). Rank 0's result comes back as a checkpoint, so both paths return
  the same object.
* :func:`map_ids` runs a callable-class scorer over ids in-process (``ray.score_actors = 0``)
  or as a Ray Data ``map_batches`` actor pool, output in the order of the ids.
* :func:`run_task` runs one function in-process or as a Ray task on a Train worker's resources.
* :func:`local_device` / :func:`worker_device`: the torch device the config names (``cuda`` when
  ``ray.use_gpu``, else ``cpu``), for work in this process (CUDA must exist here, else a
  one-line ``ConfigError``) or on a Ray worker that Ray placed on a GPU.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from orchestrator.config.schema import ConfigError

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
RESULT_FILE = "train_result.pkl"
#: Numeric result attributes reported to Ray Train as metrics when the result has them.
METRIC_FIELDS = ("steps", "mean_loss", "seconds", "chosen_epoch", "epochs_run")


def under_job_submission() -> bool:
    """True inside ``ray job submit`` (the job driver finds its cluster by itself)."""
    return bool(os.environ.get("RAY_JOB_ID") or os.environ.get("RAY_ADDRESS"))


def _bind_to_loopback() -> None:
    """Make the local Ray about to start bind to 127.0.0.1. Ray reads
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when ``ray`` is first imported, so setting the
    variable now only reaches the processes Ray spawns; this process's copy of the constant (what
    ``ray.init`` consults to choose the node address) is set from it too. Without this, a local
    sweep's GCS, raylet and workers listened on every interface (``::``) and the runtime-env
    agent on the machine's network address (tests/test_loopback.py checks the sockets)."""
    for key, value in LOOPBACK_ENV.items():
        os.environ.setdefault(key, value)
    from ray._common.utils import env_bool
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = env_bool(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR,
                                                ray_constants.ENABLE_RAY_CLUSTER)


def ensure_ray(address: str | None = None, num_cpus: int | None = None, temp_dir: str | None = None,
               quiet: bool = False):
    """Initialise Ray once per process and return the ``ray`` module.

    ``address=None`` and not under job submission: a private local Ray on 127.0.0.1 (dashboard
    off). Otherwise join the given (or submitting) cluster. ``quiet`` (a sweep's default console):
    Ray's own INFO lines off and the workers' output not forwarded to this driver (Tune keeps
    each trial's output in its folder).
    """
    import ray

    if ray.is_initialized():
        return ray
    console = {"logging_level": logging.WARNING, "log_to_driver": False} if quiet else {}
    if quiet:  # token authentication stays on; only its "is enabled" notice is not printed
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if address is None and not under_job_submission():
        _bind_to_loopback()
        kwargs = {"num_cpus": num_cpus, "include_dashboard": False, "log_to_driver": True, **console}
        if temp_dir:
            kwargs["_temp_dir"] = temp_dir
        ray.init(**{k: v for k, v in kwargs.items() if v is not None})
    elif address is not None:
        ray.init(address=address, **console)
    else:
        ray.init(**console)  # under `ray job submit`: RAY_ADDRESS names the submitting cluster
    return ray


# ----------------------------------------------------------------------------------- devices
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def gpu_config_error(ray_config) -> str | None:
    """Why ``ray.use_gpu`` cannot be honoured in this process, or ``None`` when it can (or is off)."""
    if ray_config.use_gpu and not cuda_available():
        return ("ray.use_gpu is true but this process has no CUDA device (torch.cuda.is_available() is False); "
                "set ray.use_gpu: false or run where a GPU is visible")
    return None


def local_device(ray_config) -> str:
    """The device of work run in this process: ``cuda`` when ``ray.use_gpu`` (and CUDA exists
    here: otherwise :class:`ConfigError`), else ``cpu``."""
    problem = gpu_config_error(ray_config)
    if problem is not None:
        raise ConfigError(problem)
    return "cuda" if ray_config.use_gpu else "cpu"


def worker_device(ray_config) -> str:
    """The device of work on a Ray worker or actor: Ray gave it a GPU exactly when ``ray.use_gpu``."""
    return "cuda" if ray_config.use_gpu else "cpu"


def to_device(tensor, device):
    """``tensor`` (built on the CPU) on ``device``: pinned and copied without blocking on CUDA (the
    CPU goes on cutting the next batch), an ordinary ``.to`` otherwise (a no-op on the CPU)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


# ---------------------------------------------------------------------------------- training
def _train_worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    job, loop = loop_config["job"], loop_config["loop"]
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


def train_with_ray(job, ray_config, storage_path: str, name: str, loop: Callable):
    """Run ``loop(job, ...)`` on ``ray_config.train_workers`` Ray Train workers and return rank
    0's result. ``loop`` must be importable by the workers (a module-level function)."""
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


def run_loop(loop: Callable, job, ray_config, storage_path: str | Path, name: str):
    """``loop(job)`` in this process when ``ray_config.train_workers == 0`` (on
    :func:`local_device`: CUDA when ``ray.use_gpu``), else on Ray Train (storage under
    ``storage_path``, run name ``name``, Ray Train's device); the same result object either way."""
    if ray_config.train_workers >= 1:
        ensure_ray()
        return train_with_ray(job, ray_config, str(storage_path), name, loop=loop)
    return loop(job, device=local_device(ray_config))


def run_task(function: Callable, args: tuple, ray_config):
    """``function(*args)`` here, or, when training runs on Ray Train, as one Ray task with a
    Train worker's resources (its GPU when there is one; the device is then passed last)."""
    if ray_config.train_workers >= 1:
        ray = ensure_ray()
        gpus = ray_config.gpus_per_worker if ray_config.use_gpu else 0
        task = ray.remote(num_cpus=ray_config.cpus_per_worker, num_gpus=gpus)(function)
        return ray.get(task.remote(*args, worker_device(ray_config)))
    return function(*args, local_device(ray_config)) if ray_config.use_gpu else function(*args)


# ----------------------------------------------------------------------------------- scoring
def _resolve(value):
    """Arguments may arrive as a Ray object reference (shipped once through the object store)."""
    if type(value).__name__ == "ObjectRef":
        import ray

        return ray.get(value)
    return value


def resolve_refs(kwargs: dict) -> dict:
    """``kwargs`` with every Ray object reference replaced by its value."""
    return {k: _resolve(v) for k, v in kwargs.items()}


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _from_rows(rows: list[dict]) -> dict:
    return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}


def map_ids(scorer_class, scorer_kwargs: dict, ids: list[str], ray_config, empty: dict,
            large_args: tuple[str, ...] = ()) -> dict:
    """Score ``ids`` with ``scorer_class(**scorer_kwargs)({"id": array}) -> dict of arrays``.

    ``ray_config.score_actors == 0``: in this process, ``score_batch_size`` ids per call.
    Otherwise a Ray Data ``map_batches`` actor pool of ``score_actors`` scorers (each opens
    the data itself); ``large_args`` (e.g. model states) go through the object store once.
    Output arrays follow the order of ``ids``; ``empty`` is returned for no ids."""
    if not ids:
        return empty
    batch_size = ray_config.score_batch_size
    if ray_config.score_actors < 1:
        scorer = scorer_class(**scorer_kwargs)
        return _concat([scorer({"id": np.array(ids[i:i + batch_size], dtype=object)})
                        for i in range(0, len(ids), batch_size)])
    ray = ensure_ray()
    kwargs = dict(scorer_kwargs)
    for key in large_args:
        if kwargs.get(key) is not None:
            kwargs[key] = ray.put(kwargs[key])
    scored = ray.data.from_items([{"id": i} for i in ids]).map_batches(
        scorer_class, fn_constructor_kwargs=kwargs, batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=ray_config.score_actors),
        num_cpus=ray_config.cpus_per_actor, num_gpus=1.0 if ray_config.use_gpu else 0.0)
    rows = scored.take_all()
    position = {item_id: n for n, item_id in enumerate(ids)}
    rows.sort(key=lambda r: position[str(r["id"])])
    out = _from_rows(rows)
    out["id"] = np.array([str(r["id"]) for r in rows], dtype=object)
    return out
