"""GPU readiness that can be checked on a CPU machine (issue 17 item 3): the ``ray.use_gpu`` /
``ray.amp`` validation rules, the device each path picks, the CPU path unchanged by ``amp``, and
``benchmarks/gpu_cycle.py --smoke`` running the benchmark's code end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models import CSRNet
from orchestrator.alac.train import TrainJob, run_training
from orchestrator.config import ALConfig, ConfigError, DatasetConfig, RayConfig, TrainConfig, load_config
from orchestrator.core.execution import local_device, run_loop, to_device, worker_device
from orchestrator.core.tensors import to_bytes

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")


def _load(name: str, *overrides: str):
    return load_config(GOLDEN / name, "paper", list(overrides))


def test_amp_is_off_by_default_and_needs_use_gpu():
    assert _load("alac_smoke.yaml").ray.amp is False
    with pytest.raises(ConfigError, match="ray.amp .*needs ray.use_gpu"):
        _load("alac_smoke.yaml", "ray.amp=true")


def test_amp_is_refused_for_cssccnn():
    with pytest.raises(ConfigError, match="AL-AC training only"):
        _load("cssccnn_smoke.yaml", "ray.amp=true", "ray.use_gpu=true", "ray.train_workers=1")


@no_cuda
def test_in_process_gpu_without_cuda_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("RAY_JOB_ID", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError) as error:
        _load("alac_smoke.yaml", "ray.use_gpu=true")
    assert "ray.use_gpu is true but this process has no CUDA device" in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="no CUDA device"):
        local_device(RayConfig(use_gpu=True))


def test_gpu_on_ray_workers_loads_anywhere():
    """The driver of a cluster run need not see a GPU: Ray places the workers on one."""
    config = _load("alac_smoke.yaml", "ray.use_gpu=true", "ray.train_workers=1", "ray.amp=true")
    assert config.ray.use_gpu and config.ray.amp
    assert worker_device(config.ray) == "cuda"


def test_devices_without_use_gpu_are_cpu():
    assert local_device(RayConfig()) == "cpu" and worker_device(RayConfig()) == "cpu"
    tensor = torch.ones(3)
    assert to_device(tensor, torch.device("cpu")) is tensor  # no copy, no pinning on the CPU


def _tiny_job(amp: bool) -> TrainJob:
    dataset = DatasetConfig(name="synthetic", options={"n_train": 4, "n_test": 1, "height": 64, "width": 64})
    train = TrainConfig(lr=1e-5, epochs=2, reference_total=4, max_steps_per_epoch=2)
    ids = [f"train/{i:06d}" for i in range(4)]
    return TrainJob(dataset=dataset, labeled_ids=ids[:2], unlabeled_ids=ids[2:], alignment=True, width=0.125,
                    train=train, alac=ALConfig(train=train), seed=3,
                    model_state=to_bytes(CSRNet(width=0.125, generator=torch.Generator().manual_seed(0)).state_dict()),
                    amp=amp)


def test_the_trial_job_carries_amp_and_the_cpu_ignores_it(tmp_path):
    from orchestrator.alac.trial import train_job

    config = _load("alac_smoke.yaml", "ray.use_gpu=true", "ray.train_workers=1", "ray.amp=true")
    assert train_job(config, config.dataset, ["a"], [], False, 0, (b"", None, None, None)).amp is True
    seen = {}

    def loop(job, device):
        seen.update(amp=job.amp, device=device)
        return run_training(job, device=device)

    with_amp = run_loop(loop, _tiny_job(True), RayConfig(), tmp_path, "amp")
    assert seen == {"amp": True, "device": "cpu"}
    plain = run_training(_tiny_job(False))
    assert with_amp.model_state == plain.model_state and with_amp.mean_loss == plain.mean_loss


def test_gpu_cycle_smoke_runs_on_the_cpu():
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_cycle.py"), "--smoke", "--epochs", "2",
                           "--threads", "1"], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    bench = {line.split()[1]: float(line.split()[2]) for line in done.stdout.splitlines() if line.startswith("BENCH ")}
    assert set(bench) == {"gpu_alac_seconds_per_epoch", "gpu_alac_images_per_s",
                          "gpu_cssccnn_stage2_seconds_per_epoch", "gpu_memory_gib"}
    assert bench["gpu_alac_seconds_per_epoch"] > 0 and bench["gpu_cssccnn_stage2_seconds_per_epoch"] > 0


@no_cuda
def test_gpu_cycle_without_cuda_says_so_and_exits_0():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_cycle.py")], capture_output=True,
                          text=True, env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "no CUDA device" in done.stdout and "BENCH" not in done.stdout
