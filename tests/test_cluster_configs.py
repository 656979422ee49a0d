"""The cluster launcher YAMLs parse and carry the keys the launcher requires."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


@pytest.mark.parametrize("name", ["aws-gpu.yaml", "onprem.yaml"])
def test_launcher_yaml_has_required_keys(name):
    config = yaml.safe_load((CLUSTER / name).read_text())
    for key in ("cluster_name", "provider", "auth", "available_node_types", "head_node_type", "setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands", "file_mounts"):
        assert key in config, key
    assert config["provider"]["type"] in ("aws", "local")
    assert config["head_node_type"] in config["available_node_types"]
    workers = [t for n, t in config["available_node_types"].items() if n != config["head_node_type"]]
    assert workers and all("max_workers" in t and "min_workers" in t and "node_config" in t for t in workers)
    assert any("pip install" in c and "[gpu]" in c for c in config["setup_commands"])
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start  # the dashboard is never exposed
    assert {".venv", "results"} <= set(config["rsync_exclude"])


def test_aws_cluster_autoscales_gpu_workers():
    config = yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())
    gpu = config["available_node_types"]["worker.gpu"]
    assert gpu["resources"]["GPU"] == 1 and gpu["min_workers"] == 0 and gpu["max_workers"] >= 1
    assert config["provider"]["type"] == "aws" and config["max_workers"] >= gpu["max_workers"]
    assert any("/mnt/shared" in c for c in config["setup_commands"])
