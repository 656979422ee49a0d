"""AL-AC trials: configs, validation, determinism, Ray == in-process, kill-and-resume."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models import CSRNet
from orchestrator.alac.labels import LabelState
from orchestrator.alac.train import WeightAverage, lr_factor, run_training
from orchestrator.alac.trial import ALACTrial, InjectedFailure, cycle_sizes, train_job
from orchestrator.config import ConfigError, load_config
from orchestrator.core.results import ROW_COLUMNS
from orchestrator.core.samples import open_split
from orchestrator.core.tensors import from_bytes, to_bytes
from orchestrator.data import DatasetError

DEMO = Path(__file__).resolve().parents[1] / "configs/alac/demo.yaml"
SMOKE = ["dataset.options.n_train=14", "dataset.options.n_test=4", "dataset.options.height=64",
         "dataset.options.width=64", "alac.initial=3", "alac.per_cycle=3", "alac.budget=9"]


def smoke_config(*extra, seed=0):
    return load_config(DEMO, "smoke", SMOKE + list(extra), seed=seed)


def quiet(_msg):
    pass


def test_cycle_sizes_end_exactly_at_budget():
    assert cycle_sizes(10, 10, 30) == [10, 20, 30]
    assert cycle_sizes(4, 3, 10) == [4, 7, 10]  # UCF_CC_50: m0 4, m 3, M 10
    assert cycle_sizes(4, 4, 10) == [4, 8, 10]  # unreachable in whole steps: the last takes the rest
    assert cycle_sizes(5, 5, 5) == [5]


def test_label_state_round_trip_and_errors():
    state = LabelState(["a", "b", "c", "d"])
    state.label(["c", "a"], cycle=1)
    state.label(["d"], cycle=2)
    assert state.labeled_ids == ["c", "a", "d"] and state.unlabeled_ids == ["b"]
    clone = LabelState(["a", "b", "c", "d"])
    clone.load_state_dict(json.loads(json.dumps(state.state_dict())))
    assert clone.labeled_ids == ["c", "a", "d"] and clone.cycle_of("d") == 2
    with pytest.raises(ValueError, match="already labeled"):
        state.label(["a"], cycle=3)
    with pytest.raises(KeyError, match="not in the pool"):
        state.label(["z"], cycle=3)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['alac.budgett'\]"):
        smoke_config("alac.budgett=3")
    with pytest.raises(ConfigError, match="train.epochs: expected an integer"):
        smoke_config("train.epochs=two")
    with pytest.raises(ConfigError, match="unknown scale"):
        load_config(DEMO, "huge")
    cfg = smoke_config("train.lr=1e-4")  # YAML reads 1e-4 as a string; the float field takes it
    assert cfg.alac.train.lr == 1e-4 and cfg.scale == "smoke" and cfg.alac.train.epochs == 1


@pytest.mark.parametrize("override, message", [
    ("alac.budget=99", r"alac.budget \(M = 99\) exceeds the pool: .* has 14 images"),
    ("alac.per_cycle=0", r"alac.per_cycle \(m\) must be >= 1"),
    ("alac.strategy=uncertainty", r"unknown strategy 'uncertainty'; known: \['count_threshold'"),
    ("model.weights=/no/such/file.pth", "model.weights: file not found: /no/such/file.pth"),
    ("alac.strategy=domain_classifier", "needs alac.alignment_every_cycle"),
    ("alac.train.lr=-1e-4", r"alac.train.lr must be > 0, got -0.0001"),
    ("alac.train.epochs=0", r"alac.train.epochs must be >= 1, got 0"),
    ("alac.train.momentum=1.0", r"alac.train.momentum must lie in \[0, 1\)"),
    ("alac.train.weight_decay=-1", r"alac.train.weight_decay must be >= 0"),
    ("alac.train.pairs_per_step=0", r"alac.train.pairs_per_step must be >= 1, got 0"),
    ("alac.train.grad_clip=0", r"alac.train.grad_clip must be > 0 or null, got 0"),
    ("alac.train.max_steps_per_epoch=0", r"alac.train.max_steps_per_epoch must be >= 1 or null"),
    ("alac.train.ema_decay=1.0", r"alac.train.ema_decay must lie in \(0, 1\) or be null, got 1.0"),
    ("alac.train.lr_schedule=linear", r"alac.train.lr_schedule: unknown schedule 'linear'; expected one of constant, cosine"),
])
def test_bad_settings_fail_before_any_training(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        ALACTrial(smoke_config(override), tmp_path / "t", log=quiet)
    assert not (tmp_path / "t").exists()


def test_unknown_dataset_fails_early(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        ALACTrial(smoke_config("dataset.name=nope"), tmp_path, log=quiet)


def test_initial_images_depend_on_seed_only():
    pssw = ALACTrial(smoke_config(), "/tmp/unused", log=quiet).fresh_state().labels.labeled_ids
    rand = ALACTrial(smoke_config("alac.strategy=random"), "/tmp/unused", log=quiet).fresh_state().labels.labeled_ids
    other = ALACTrial(smoke_config(seed=1), "/tmp/unused", log=quiet).fresh_state().labels.labeled_ids
    assert pssw == rand and len(pssw) == 3 and other != pssw


def final_ids(rows: pd.DataFrame) -> list[str]:
    return json.loads(rows.iloc[-1]["labeled_ids"])


def test_trial_rows_and_same_seed_same_result(tmp_path):
    a = ALACTrial(smoke_config(), tmp_path / "a", log=quiet).run()
    b = ALACTrial(smoke_config(), tmp_path / "b", log=quiet).run()
    assert list(a.columns[:len(ROW_COLUMNS)]) == ROW_COLUMNS
    assert list(a["cycle"]) == [1, 2, 3] and list(a["n_labeled"]) == [3, 6, 9]
    assert list(a["alignment"]) == [False, False, True]
    assert (a["status"] == "ok").all() and (a["labeled_points"].diff().dropna() > 0).all()
    assert final_ids(a) == final_ids(b) and len(set(final_ids(a))) == 9
    np.testing.assert_array_equal(a["mae"], b["mae"])
    on_disk = pd.read_parquet(tmp_path / "a" / "rows.parquet")
    pd.testing.assert_frame_equal(on_disk, a)


def test_kill_after_cycle_2_and_resume_equals_uninterrupted(tmp_path):
    whole = ALACTrial(smoke_config(seed=3), tmp_path / "whole", log=quiet).run()
    with pytest.raises(InjectedFailure):
        ALACTrial(smoke_config(seed=3), tmp_path / "killed", log=quiet).run(fail_after_cycle=2)
    assert len(pd.read_parquet(tmp_path / "killed" / "rows.parquet")) == 2
    messages = []
    resumed = ALACTrial(smoke_config(seed=3), tmp_path / "killed", log=messages.append).run()
    assert any("resuming" in m and "cycle 3" in m for m in messages)
    assert final_ids(resumed) == final_ids(whole)
    for column in ("mae", "rmse", "labeled_points", "selected_ids", "labeled_ids", "train_loss"):
        assert list(resumed[column]) == list(whole[column]), column


def test_resume_refuses_a_different_config(tmp_path):
    with pytest.raises(InjectedFailure):
        ALACTrial(smoke_config(), tmp_path, log=quiet).run(fail_after_cycle=1)
    with pytest.raises(ConfigError, match="different config"):
        ALACTrial(smoke_config("alac.strategy=random"), tmp_path, log=quiet).run()


@pytest.mark.slow
def test_ray_train_and_ray_data_give_the_in_process_result(tmp_path, ray_session):
    ray_cfg = smoke_config("ray.train_workers=1", "ray.score_actors=1", "ray.cpus_per_worker=1",
                           "ray.cpus_per_actor=1")
    via_ray = ALACTrial(ray_cfg, tmp_path / "ray", log=quiet).run()
    local = ALACTrial(smoke_config(), tmp_path / "local", log=quiet).run()
    assert list(via_ray["cycle"]) == [1, 2, 3]
    assert final_ids(via_ray) == final_ids(local)
    np.testing.assert_array_equal(via_ray["mae"], local["mae"])
    assert (tmp_path / "ray" / "ray_train").is_dir()  # Ray Train really ran


def test_trial_cli(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "orchestrator.trial", "--config", str(DEMO), "--scale", "smoke", "--out", str(out)]
    sets = [a for s in SMOKE for a in ("--set", s)]
    done = subprocess.run(cmd + sets, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("experiment=alac_demo method=alac dataset=synthetic seed=0 cycle=3")
    assert len(pd.read_parquet(out / "rows.parquet")) == 3
    bad = subprocess.run(cmd + ["--set", "alac.budget=1000"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "exceeds the pool" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.realdata
def test_real_data_smoke_trial_on_shanghaitech_b(tmp_path, data_root):
    from conftest import real_dataset_dir

    root = real_dataset_dir(data_root, "ShanghaiTech/part_B")
    cfg = load_config(DEMO, "smoke", [
        "dataset.name=shanghaitech_b", f"dataset.root={root}", "dataset.options={}", "dataset.max_side=256",
        "dataset.limit_train=10", "dataset.limit_test=3", "alac.initial=2", "alac.per_cycle=2",
        "alac.budget=4", "train.max_steps_per_epoch=3",
    ])
    rows = ALACTrial(cfg, tmp_path, log=quiet).run()
    assert list(rows["n_labeled"]) == [2, 4] and rows["dataset"].iloc[0] == "shanghaitech_b"
    assert np.isfinite(rows["mae"]).all() and (rows["labeled_points"] > 0).all()


def test_grl_only_ablation_changes_only_the_aligned_cycle(tmp_path):
    with_mixup = ALACTrial(smoke_config(), tmp_path / "mx", log=quiet).run()
    grl_only = ALACTrial(smoke_config("alac.mixup=false"), tmp_path / "grl", log=quiet).run()
    assert list(grl_only["train_loss"][:2]) == list(with_mixup["train_loss"][:2])  # not aligned yet
    assert grl_only["train_loss"].iloc[2] != with_mixup["train_loss"].iloc[2]  # no mixed-sample term


def test_the_paper_rs_baseline_trains_each_size_once_from_the_start(tmp_path):
    """RS (Baseline): at each size n of the schedule, the trial's first m0 images plus the next
    n - m0 of one seeded random order, one training from the initial weights, no alignment (even
    with ``alac.alignment`` set); the row at n is the same for every m."""
    rows = ALACTrial(smoke_config("alac.strategy=rs_baseline"), tmp_path / "rs", log=quiet).run()
    assert list(rows["n_labeled"]) == [3, 6, 9] and not rows["alignment"].any()
    labeled = [json.loads(x) for x in rows["labeled_ids"]]
    first = ALACTrial(smoke_config(), "/tmp/unused", log=quiet).fresh_state().labels.labeled_ids
    assert labeled[0] == first and labeled[2][:6] == labeled[1]  # paired with the strategies' trials, nested
    assert json.loads(rows["selected_ids"].iloc[0]) == []  # nothing selected: the order is drawn up front
    other_m = ALACTrial(smoke_config("alac.strategy=rs_baseline", "alac.per_cycle=2"), tmp_path / "m2", log=quiet).run()
    assert list(other_m["n_labeled"]) == [3, 5, 7, 9]
    for n in (3, 9):
        mine, theirs = rows[rows["n_labeled"] == n].iloc[0], other_m[other_m["n_labeled"] == n].iloc[0]
        assert mine["labeled_ids"] == theirs["labeled_ids"] and mine["mae"] == theirs["mae"]
    loop = ALACTrial(smoke_config("alac.strategy=random"), tmp_path / "loop", log=quiet).run()
    assert loop["mae"].iloc[0] == rows["mae"].iloc[0]  # at m0 it is the strategies' first cycle exactly
    assert loop["mae"].iloc[1] != rows["mae"].iloc[1]  # the cycle-by-cycle random selection is another thing


@pytest.mark.realdata
def test_table1_rs_rows_are_the_same_for_both_m(tmp_path, data_root):
    """configs/alac/table1_*: the RS rows run ``rs_baseline``, whose row at each labeled-set size
    is the same for the grid's two m (the paper prints the same RS numbers for m = 10 and 5)."""
    import yaml
    from conftest import real_dataset_dir

    real_dataset_dir(data_root, "ShanghaiTech/part_A")
    for table in sorted(DEMO.parent.glob("table1_*.yaml")):
        paper = yaml.safe_load(table.read_text())["paper"]["results"]
        assert {r["settings"]["alac.strategy"] for r in paper if r["label"].startswith("RS")} == {"rs_baseline"}, table
    path = DEMO.parent / "table1_pssw_vs_random_sha.yaml"
    base = load_config(path, "smoke")
    assert "rs_baseline" in base.grid["alac.strategy"]
    runs = {}
    for m in base.grid["alac.per_cycle"]:  # smoke's stand-ins for m = 10 and 5
        config = load_config(path, "smoke", ["alac.strategy=rs_baseline", f"alac.per_cycle={m}"], seed=0)
        runs[m] = ALACTrial(config, tmp_path / f"m{m}", log=quiet).run().set_index("n_labeled")
    big, small = (runs[m] for m in base.grid["alac.per_cycle"])
    shared = sorted(set(big.index) & set(small.index))
    assert len(shared) >= 2 and len(small) > len(big)
    for column in ("mae", "rmse", "labeled_ids", "train_loss"):
        assert list(big.loc[shared, column]) == list(small.loc[shared, column]), column
    with pytest.raises(ConfigError, match="unknown strategy 'rs'"):
        smoke_config("alac.strategy=rs") and ALACTrial(smoke_config("alac.strategy=rs"), tmp_path / "x", log=quiet)


def test_holdout_replaces_the_test_split_by_held_out_train_images(tmp_path):
    cfg = smoke_config("dataset.holdout=4")
    pool, held = open_split(cfg.dataset, "train"), open_split(cfg.dataset, "test")
    full = open_split(smoke_config().dataset, "train")
    assert len(pool) == 10 and len(held) == 4
    assert sorted(i.id for i in pool.items + held.items) == sorted(i.id for i in full.items)
    assert all(i.id.startswith("train/") for i in held.items)  # no test image is used
    assert [i.id for i in open_split(smoke_config("dataset.holdout=4", seed=3).dataset, "test")] == [i.id for i in held]
    rows = ALACTrial(smoke_config("dataset.holdout=4", "alac.budget=6"), tmp_path / "h", log=quiet).run()
    labeled = set(json.loads(rows.iloc[-1]["labeled_ids"]))
    assert not labeled & {i.id for i in held.items}  # held-out images never enter the pool
    with pytest.raises(DatasetError, match=r"dataset.holdout must lie in \[1, 13\]"):
        open_split(smoke_config("dataset.holdout=14").dataset, "train")


def test_more_pairs_per_step_and_clipping_train_a_different_but_reproducible_model(tmp_path):
    base = ALACTrial(smoke_config(), tmp_path / "a", log=quiet).run()
    cfg = ("alac.train.pairs_per_step=2", "alac.train.grad_clip=0.5")
    a = ALACTrial(smoke_config(*cfg), tmp_path / "b", log=quiet).run()
    b = ALACTrial(smoke_config(*cfg), tmp_path / "c", log=quiet).run()
    assert a["mae"].tolist() == b["mae"].tolist()
    assert a["mae"].tolist() != base["mae"].tolist()


def test_cosine_schedule_falls_to_zero_and_restarts_every_cycle(tmp_path):
    assert [lr_factor("cosine", s, 4) for s in range(5)] == pytest.approx([1, 0.853553, 0.5, 0.146447, 0], abs=1e-6)
    assert lr_factor("constant", 7, 8) == 1.0
    cfg = smoke_config("alac.train.lr_schedule=cosine", "alac.train.epochs=2")
    ids = open_split(cfg.dataset, "train").ids
    start = (to_bytes(CSRNet(width=cfg.model.width).state_dict()), None, None, None)
    job = train_job(cfg, cfg.dataset, ids[:3], ids[3:6], True, 5, start)
    first = run_training(job)
    steps = first.steps
    rates = [g["lr"] for g in from_bytes(first.optimizer_state)["param_groups"]]
    last = job.train.lr * lr_factor("cosine", steps - 1, steps)
    assert rates == pytest.approx([last]) and last < 0.05 * job.train.lr
    assert from_bytes(first.classifier_optimizer_state)["param_groups"][0]["lr"] == pytest.approx(last)
    # the next cycle restarts at alac.train.lr although its restored optimiser state says otherwise
    again = run_training(dataclasses.replace(job, optimizer_state=first.optimizer_state,
                                             train=dataclasses.replace(job.train, epochs=1, max_steps_per_epoch=1)))
    assert from_bytes(again.optimizer_state)["param_groups"][0]["lr"] == pytest.approx(job.train.lr)


def test_weight_average_is_the_bias_corrected_moving_average_of_the_steps_weights():
    layer = torch.nn.Linear(1, 1, bias=False)
    average = WeightAverage(layer, decay=0.5)
    for value in (4.0, 2.0, 1.0):
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update(layer)
    layer.weight.data.fill_(-9.0)
    average.copy_to(layer)
    # weights 0.5**2, 0.5, 1 (normalised by 1 - 0.5**3 over the (1 - 0.5) steps): the start value -9 has none
    expected = (0.25 * 4 + 0.5 * 2 + 1 * 1) / 1.75
    assert layer.weight.item() == pytest.approx(expected)


def test_a_cycle_with_weight_averaging_returns_other_weights_reproducibly(tmp_path):
    cfg = smoke_config("alac.train.ema_decay=0.9")
    ids = open_split(cfg.dataset, "train").ids
    start = (to_bytes(CSRNet(width=cfg.model.width).state_dict()), None, None, None)
    plain = run_training(train_job(smoke_config(), cfg.dataset, ids[:3], [], False, 5, start))
    averaged = [run_training(train_job(cfg, cfg.dataset, ids[:3], [], False, 5, start)) for _ in range(2)]
    first, second = (from_bytes(r.model_state) for r in averaged)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], from_bytes(plain.model_state)[k]) for k in first)
    # the optimiser's state is the raw trajectory's either way
    assert from_bytes(averaged[0].optimizer_state)["state"][0]["step"] == from_bytes(plain.optimizer_state)["state"][0]["step"]


def test_al_ac_v_picks_the_images_the_classifier_is_surest_are_unlabeled():
    """AL-AC-v (appendix: unlabeled 0, labeled 1, "the lowest probabilities") picks the highest
    P(unlabeled) in our labeled 0 / unlabeled 1 convention; ``alac.domain_pick: most_labeled``
    is the other reading."""
    from orchestrator.alac.strategy import select_batch

    scores = {"count": np.arange(6.0), "signature": np.zeros((6, 21)), "true_count": np.zeros(6),
              "domain_prob": np.array([0.3, 0.95, 0.1, 0.6, 0.05, 0.8])}
    rng = np.random.default_rng(0)
    args = (scores, np.array([1.0]), np.zeros((1, 21)), 2, rng)
    variant = smoke_config("alac.strategy=domain_classifier", "alac.alignment_every_cycle=true")
    assert list(select_batch(variant.alac, *args).selected) == [1, 5]
    other = smoke_config("alac.strategy=domain_classifier", "alac.alignment_every_cycle=true", "alac.domain_pick=most_labeled")
    assert list(select_batch(other.alac, *args).selected) == [4, 2]
    with pytest.raises(ConfigError, match="alac.domain_pick: must be one of"):
        ALACTrial(smoke_config("alac.domain_pick=lowest"), "/tmp/unused", log=quiet)
