"""A diverging training (learning rate 1e30: the loss is NaN after the first step) fails its
trial with a message naming the trial, its cycle or stage, the epoch and the learning rate; in
a sweep that trial is counted as failed and the other grid point finishes."""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.alac.trial import ALACTrial
from orchestrator.config import load_config
from orchestrator.core.finite import NonFiniteLoss, check_finite_loss, find_nonfinite, loss_context
from orchestrator.cssccnn.trial import CSSCCNNTrial

REPO = Path(__file__).resolve().parents[1]
ALAC_DEMO = REPO / "configs/alac/demo.yaml"
CSS_DEMO = REPO / "configs/cssccnn/demo.yaml"
TINY = ["dataset.options.n_train=12", "dataset.options.n_test=3", "dataset.options.height=64",
        "dataset.options.width=64", "alac.initial=3", "alac.per_cycle=3", "alac.budget=9"]
ABSURD = 1e30


def quiet(_msg):
    pass


def test_check_passes_finite_losses_and_names_epoch_and_rate_of_the_others():
    assert check_finite_loss(2.5, 3, 1e-3) == 2.5
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(NonFiniteLoss, match=rf"^epoch 3, learning rate 0\.001: the summed training loss is {bad}"):
            check_finite_loss(bad, 3, 1e-3)
    with pytest.raises(NonFiniteLoss, match=r"^the validation mae is nan"):
        check_finite_loss(math.nan, what="the validation mae")


def test_context_is_added_outermost_first_and_survives_pickling():
    with pytest.raises(NonFiniteLoss) as caught:
        with loss_context("trial t", "cycle 2"):
            check_finite_loss(math.nan, 1, 0.5)
    error = caught.value
    assert str(error).startswith("trial t, cycle 2, epoch 1, learning rate 0.5: the summed training loss is nan")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)  # it crosses Ray's process boundaries
    with pytest.raises(KeyError):  # any other failure passes unchanged
        with loss_context("trial t"):
            raise KeyError("x")


def test_the_failure_is_found_inside_ray_trains_wrapping():
    from ray.train import WorkerGroupError
    from ray.train.v2._internal.exceptions import UserExceptionWithTraceback

    inner = NonFiniteLoss("the summed training loss is nan", ("epoch 1", "learning rate 1"))
    wrapped = WorkerGroupError("rank 0 failed", {0: UserExceptionWithTraceback(inner, "Traceback ...")})
    assert find_nonfinite(wrapped) is inner
    assert find_nonfinite(RuntimeError("other")) is None
    with pytest.raises(NonFiniteLoss, match=r"^trial t, stage stage2, epoch 1, learning rate 1: "):
        with loss_context("trial t", "stage stage2"):
            raise wrapped


def alac_config(*extra, seed=0):
    return load_config(ALAC_DEMO, "smoke", TINY + list(extra), seed=seed)


def test_alac_training_with_an_absurd_learning_rate_fails_naming_trial_cycle_epoch_and_rate(tmp_path):
    trial = ALACTrial(alac_config(f"alac.train.lr={ABSURD}", seed=4), tmp_path, log=quiet, trial_id="alac_demo-x-s4")
    with pytest.raises(NonFiniteLoss) as caught:
        trial.run()
    assert re.match(r"trial alac_demo-x-s4 \(experiment alac_demo, seed 4\), cycle 1, epoch 1, learning rate 1e\+30: "
                    r"the summed training loss is (nan|inf)", str(caught.value)), str(caught.value)
    assert not (tmp_path / "rows.parquet").exists()  # no row of a diverged cycle is kept


def css(*extra):
    return load_config(CSS_DEMO, "smoke", list(extra), seed=0)


@pytest.mark.parametrize(("extra", "stage", "what"), [
    (["cssccnn.stage1.lr=1e30", "cssccnn.stage1.epochs=1"], "stage1", "the summed training loss is nan"),
    (["cssccnn.stage1.epochs=0", "cssccnn.stage2.lr=1e30", "cssccnn.stage2.epochs=1"], "stage2",
     "the predicted cell counts are nan or inf"),  # the Sinkhorn loss refuses them at the step
])
def test_css_stage_with_an_absurd_learning_rate_fails_naming_trial_stage_epoch_and_rate(tmp_path, extra, stage, what):
    trial = CSSCCNNTrial(css(*extra), tmp_path, log=quiet, trial_id="css-y-s0")
    with pytest.raises(NonFiniteLoss) as caught:
        trial.run()
    expected = f"trial css-y-s0 (experiment cssccnn_demo, seed 0), stage {stage}, epoch 1, learning rate 1e+30: {what}"
    assert str(caught.value).startswith(expected), str(caught.value)


@pytest.mark.slow
def test_the_message_comes_back_from_a_ray_train_worker(tmp_path, ray_session):
    config = alac_config(f"alac.train.lr={ABSURD}", "ray.train_workers=1", "ray.cpus_per_worker=1")
    with pytest.raises(NonFiniteLoss, match=r"^trial w \(experiment alac_demo, seed 0\), cycle 1, epoch 1, "
                                            r"learning rate 1e\+30: the summed training loss is"):
        ALACTrial(config, tmp_path, log=quiet, trial_id="w").run()
    assert (tmp_path / "ray_train").is_dir()  # Ray Train really ran


@pytest.mark.slow
def test_sweep_counts_the_diverged_trial_as_failed_and_finishes_the_other(tmp_path, ray_session, capfd):
    from orchestrator.sweep import run_sweep
    from orchestrator.sweep.__main__ import summary_table
    from orchestrator.sweep.plan import plan_sweep

    config = tmp_path / "lr_grid.yaml"
    config.write_text(ALAC_DEMO.read_text().replace("alac.strategy: [pssw, random]", "alac.train.lr: [3.0e-4, 1.0e+30]"))
    plan = plan_sweep(config, "smoke", TINY + ["ray.max_failures=0"], trials=1)  # no retry: it would diverge again
    assert len(plan.trials) == 2
    frame = pd.read_parquet(run_sweep(plan, tmp_path / "results")["alac_demo"])
    out = capfd.readouterr().out
    ok, failed = frame[frame["setting.alac.train.lr"] < 1], frame[frame["setting.alac.train.lr"] > 1]
    assert (ok["status"] == "ok").all() and list(ok["cycle"]) == [1, 2, 3] and ok["mae"].notna().all()
    assert list(failed["status"]) == ["failed"] and list(failed["cycle"]) == [1]
    victim = failed["trial_id"].iloc[0]
    error = failed["error"].iloc[0]  # the message itself, not Ray's remote traceback (the report shows line 1)
    assert error.startswith(f"NonFiniteLoss: trial {victim} (experiment alac_demo, seed 0), cycle 1, epoch 1, "
                            "learning rate 1e+30: the summed training loss is"), error
    assert "seed 0: FAILED: " in out and "learning rate 1e+30" in out  # the console's failure line
    table = summary_table(frame, plan.experiments["alac_demo"].to_dict()).splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    lines = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in table[2:]]
    assert sorted((float(line["lr"]), line["n"], line["failed"]) for line in lines) == [(3e-4, "1", "0"), (1e30, "0", "1")]
