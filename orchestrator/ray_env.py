"""Starting or joining Ray. Local Ray binds to 127.0.0.1; only an explicit address joins a cluster.

Ray 2.60 binds a single-node cluster to the machine's network address unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set before it starts (ENVIRONMENT.md); we set it for
every local start, never when joining a cluster (``--address`` or under ``ray job submit``).
"""

from __future__ import annotations

import os

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def under_job_submission() -> bool:
    """True inside ``ray job submit`` (the job driver finds its cluster by itself)."""
    return bool(os.environ.get("RAY_JOB_ID") or os.environ.get("RAY_ADDRESS"))


def ensure_ray(address: str | None = None, num_cpus: int | None = None, temp_dir: str | None = None):
    """Initialise Ray once per process and return the ``ray`` module.

    ``address=None`` and not under job submission: a private local Ray on 127.0.0.1 (dashboard
    off). Otherwise join the given (or submitting) cluster.
    """
    import ray

    if ray.is_initialized():
        return ray
    if address is None and not under_job_submission():
        for key, value in LOOPBACK_ENV.items():
            os.environ.setdefault(key, value)
        kwargs = {"num_cpus": num_cpus, "include_dashboard": False, "log_to_driver": True}
        if temp_dir:
            kwargs["_temp_dir"] = temp_dir
        ray.init(**{k: v for k, v in kwargs.items() if v is not None})
    elif address is not None:
        ray.init(address=address)
    else:
        ray.init()  # under `ray job submit`: RAY_ADDRESS names the submitting cluster
    return ray
