"""Shared setup for the Ray benchmarks: a private local Ray bound to 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import tempfile


def start_local_ray(num_cpus: int = 2):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    temp_dir = tempfile.mkdtemp(prefix="rayb", dir="/tmp")
    ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    return ray, lambda: (ray.shutdown(), shutil.rmtree(temp_dir, ignore_errors=True))
