"""Loading configs: keys of configs written before the sections were nested (issue 11) load to
the same config (``train.*`` is ``alac.train.*``, ``cssccnn.stageN_x`` is
``cssccnn.stageN.x``), and the shared ``ray`` section is range-checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config

GOLDEN = Path(__file__).parent / "golden"

LEGACY_ALAC = """experiment: golden_alac
method: alac
seed: 1
trials: 1
dataset: {name: synthetic, options: {n_train: 16, n_test: 6, seed: 0, height: 128, width: 128}}
model: {width: 0.125, init: normal}
train: {lr: 1.0e-5, momentum: 0.95, weight_decay: 5.0e-4, epochs: 1, reference_total: 8}
alac: {initial: 4, per_cycle: 4, budget: 12, strategy: pssw, alignment: true}
ray: {train_workers: 0, score_actors: 0, torch_threads: 1}
"""


def test_legacy_alac_keys_load_to_the_nested_config(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(LEGACY_ALAC + "grid: {train.lr: [1.0e-5]}\nscales: {smoke: {train.epochs: 3}}\n")
    old = load_config(path, "paper").to_dict()
    new = load_config(GOLDEN / "alac_smoke.yaml", "paper").to_dict()
    assert {k: v for k, v in old.items() if k not in ("source", "grid")} == \
        {k: v for k, v in new.items() if k not in ("source", "grid")}
    assert old["grid"] == {"alac.train.lr": [1.0e-5]}
    assert load_config(path, "smoke").alac.train.epochs == 3
    assert load_config(path, "paper", ["train.epochs=5"]).alac.train.epochs == 5


def test_legacy_stage_keys_keep_each_stage_defaults(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("experiment: x\nmethod: cssccnn\ncssccnn: {stage1_lr: 0.5, stage2_batch: 7}\n")
    css = load_config(path, "paper", ["cssccnn.stage2_lr=0.25"]).cssccnn
    assert (css.stage1.lr, css.stage1.epochs, css.stage1.batch) == (0.5, 1000, 4)
    assert (css.stage2.lr, css.stage2.epochs, css.stage2.batch) == (0.25, 600, 7)  # stage 2's own defaults


def test_a_setting_given_both_ways_is_an_error(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("experiment: x\nmethod: cssccnn\ncssccnn: {stage1_lr: 0.5, stage1: {lr: 0.1}}\n")
    with pytest.raises(ConfigError, match="cssccnn.stage1_lr and cssccnn.stage1.lr are the same setting"):
        load_config(path, "paper")


@pytest.mark.parametrize("override, message", [
    ("ray.train_workers=-1", "ray.train_workers must be >= 0"),
    ("ray.score_actors=-2", "ray.score_actors must be >= 0"),
    ("ray.torch_threads=0", "ray.torch_threads must be >= 1"),
    ("ray.score_batch_size=0", "ray.score_batch_size must be >= 1"),
    ("ray.cpus_per_worker=0", "ray.cpus_per_worker must be > 0"),
])
def test_ray_settings_are_range_checked_when_loading(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(GOLDEN / "alac_smoke.yaml", "paper", [override])


@pytest.mark.parametrize("overrides, message", [
    (["dataset.max_side=0"], r"dataset.max_side: must be >= 1 pixel, got 0"),
    (["dataset.scale=0"], r"dataset.scale: must lie in \(0, 1\], got 0"),
    (["dataset.scale=1.5"], r"dataset.scale: must lie in \(0, 1\], got 1.5"),
    (["dataset.scale=0.5", "dataset.max_side=256"], "dataset.scale and dataset.max_side both given"),
])
def test_dataset_sizes_are_range_checked_when_loading(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(GOLDEN / "alac_smoke.yaml", "paper", overrides)
    assert load_config(GOLDEN / "alac_smoke.yaml", "paper", ["dataset.scale=0.375"]).dataset.scale == 0.375
