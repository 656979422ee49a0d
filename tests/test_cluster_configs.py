"""The cluster launcher YAMLs are accepted by Ray's own cluster launcher, and what it prepares
from them keeps the project's intent (GPU workers, dashboard on loopback, shared storage, the
``[gpu]`` install).

``ray up`` first runs ``ray.autoscaler._private.commands._bootstrap_config`` (Ray 2.60):
``prepare_config`` (for ``provider.type: local`` that is ``prepare_local``, which refuses
``available_node_types``), the provider's ``fillout_available_node_types_resources``,
``validate_config`` (the JSON schema ``ray-schema.json`` plus the node-type checks) and the
provider's ``bootstrap_config``. For the local provider every one of these steps works offline,
so the test runs the whole of it. For AWS the last two provider steps call AWS (EC2 instance
types; IAM role, key pair, subnets, security groups), so the test stops after
``validate_config`` and the first, offline step of ``bootstrap_aws`` (``check_legacy_fields``).
A guard makes any socket connection or subprocess (ssh) during these checks an error.
"""

from __future__ import annotations

import copy
import re
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
CONFIGS = ["aws-gpu.yaml", "onprem.yaml"]
BOOTSTRAP = "--autoscaling-config=~/ray_bootstrap_config.yaml"  # the head's autoscaler starts the workers


@pytest.fixture
def offline(monkeypatch):
    """No network connection and no subprocess (ssh, rsync) while Ray prepares a config (the
    launcher's modules are imported first: importing Ray subclasses ``subprocess.Popen``)."""
    import ray.autoscaler._private.commands  # noqa: F401

    def refuse(*args, **kwargs):
        raise AssertionError(f"the launcher check tried to reach out: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def launcher_config(raw: dict) -> dict:
    """The config ``ray up`` would act on, prepared and validated by Ray's launcher; raises what
    ``ray up`` would report (``click.ClickException``, ``jsonschema.ValidationError``, ValueError)."""
    from ray.autoscaler._private.commands import _bootstrap_config
    from ray.autoscaler._private.util import check_legacy_fields, prepare_config, validate_config

    raw = copy.deepcopy(raw)
    if raw["provider"]["type"] == "local":
        return _bootstrap_config(raw, no_config_cache=True)  # no cache file under /tmp either
    config = prepare_config(raw)
    validate_config(config)
    check_legacy_fields(config)
    return config


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


@pytest.mark.parametrize("name", CONFIGS)
def test_ray_launcher_accepts_the_cluster_file(name, offline):
    config = launcher_config(load(name))
    assert config["provider"]["type"] in ("aws", "local")
    assert config["head_node_type"] in config["available_node_types"]
    for commands in ("head_setup_commands", "worker_setup_commands"):  # setup_commands merged in by Ray
        setup = config[commands]
        assert any("pip install" in c and "[gpu]" in c for c in setup), commands
        assert any("/mnt/shared" in c for c in setup), commands
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start  # the dashboard is never exposed
    assert BOOTSTRAP in head_start
    assert "$RAY_HEAD_IP:6379" in " ".join(config["worker_start_ray_commands"])
    assert {".venv", "results"} <= set(config["rsync_exclude"])
    assert "." in config["file_mounts"].values()  # the project travels to every node


def test_aws_cluster_autoscales_gpu_workers(offline):
    config = launcher_config(load("aws-gpu.yaml"))
    gpu = config["available_node_types"]["worker.gpu"]
    head = config["available_node_types"][config["head_node_type"]]
    assert gpu["resources"]["GPU"] == 1 and gpu["min_workers"] == 0 and gpu["max_workers"] >= 1
    assert config["max_workers"] >= gpu["max_workers"] and head["max_workers"] == 0
    assert "GPU" not in head["resources"]  # the head only drives the sweep


def test_onprem_cluster_is_a_head_and_two_gpu_workers(offline):
    raw = load("onprem.yaml")
    config = launcher_config(raw)
    provider = config["provider"]
    assert provider["head_ip"] not in provider["worker_ips"] and len(provider["worker_ips"]) == 2
    (node_type,) = config["available_node_types"].values()  # Ray's single on-premise node type
    assert node_type["min_workers"] == node_type["max_workers"] == config["max_workers"] == 2
    assert node_type["resources"] == {}  # CPUs and GPUs detected on each machine
    assert "ssh_private_key" in config["auth"]  # copied to the head, whose autoscaler ssh-es to the workers


def test_ray_refuses_node_types_for_the_local_provider(offline):
    """The check is Ray's, not ours: the file's old form (node types on the local provider) fails."""
    import click

    raw = load("onprem.yaml")
    raw["available_node_types"] = {"head": {"resources": {}, "node_config": {}}}
    raw["head_node_type"] = "head"
    with pytest.raises(click.ClickException, match="available_node_types is not supported"):
        launcher_config(raw)


def test_ray_schema_refuses_an_unknown_key(offline):
    import jsonschema

    raw = load("aws-gpu.yaml")
    raw["setup_comands"] = []
    with pytest.raises(jsonschema.ValidationError, match="setup_comands"):
        launcher_config(raw)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_change_me_is_documented(name):
    """Each ``key: value  # CHANGE-ME`` (and the EFS host name) has a row in cluster/README.md."""
    text = (CLUSTER / name).read_text()
    keys = re.findall(r"^\s*([A-Za-z_]+):[^#\n]*#\s*CHANGE-ME", text, re.M)
    keys += ["fs-CHANGE-ME"] if "fs-CHANGE-ME" in text else []
    assert keys, name
    readme = (CLUSTER / "README.md").read_text()
    missing = [key for key in keys if f"`{key}" not in readme and f".{key}`" not in readme]
    assert not missing, missing
