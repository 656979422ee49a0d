"""A diverging label-free pretraining (``model.start: self_supervised``) fails with the same kind of
message as a diverging AL-AC cycle or CSS-CCNN stage: NonFiniteLoss naming the pretraining
stage (its pretext, experiment and seed), the step and the learning rate; no cache entry is kept."""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import pytest
import torch

from orchestrator.alac import pretrain
from orchestrator.alac.pretrain import KIND, pretrain_frontend, pretrain_key, pretrained_frontend
from orchestrator.config import load_config
from orchestrator.core.cache import entry_dir
from orchestrator.core.finite import NonFiniteLoss

REPO = Path(__file__).resolve().parents[1]
ALAC_DEMO = REPO / "configs/alac/demo.yaml"
TINY = ["dataset.options.n_train=6", "dataset.options.n_test=2", "dataset.options.height=64",
        "dataset.options.width=64", "alac.initial=2", "alac.per_cycle=2", "alac.budget=4",
        "model.start=self_supervised", "model.self_supervised.steps=6", "model.self_supervised.crops=2",
        "model.self_supervised.crop=32"]


def quiet(_msg):
    pass


def config(*extra, seed=3):
    return load_config(ALAC_DEMO, "smoke", TINY + list(extra), seed=seed)


def test_an_absurd_learning_rate_fails_naming_the_pretraining_stage_step_and_rate(tmp_path):
    cfg = config("model.self_supervised.lr=1e30")
    with pytest.raises(NonFiniteLoss) as caught:
        pretrained_frontend(cfg, tmp_path, log=quiet)
    message = str(caught.value)
    # Step 1's loss is that of the random start (finite); the first 1e30 step ruins the weights.
    assert re.match(r"stage pretraining \(rotation pretext, the label-free start of experiment alac_demo, seed 3\), "
                    r"step [2-6]/6, learning rate 1e\+30: the rotation pretext loss is (nan|inf)", message), message
    assert str(pickle.loads(pickle.dumps(caught.value))) == message  # it crosses Ray's task boundary
    assert not (entry_dir(tmp_path, KIND, pretrain_key(cfg)) / "value.bin").exists()  # nothing diverged is cached


def test_a_nan_loss_is_caught_at_its_step_before_it_reaches_the_weights(monkeypatch):
    cfg = config("model.self_supervised.task=zoom", "model.self_supervised.lr=0.002")
    real, calls = torch.nn.functional.cross_entropy, []

    def nan_at_step_4(logits, labels):
        calls.append(1)
        loss = real(logits, labels)
        return loss * math.nan if len(calls) == 4 else loss

    steps = []
    monkeypatch.setattr(pretrain.F, "cross_entropy", nan_at_step_4)
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: steps.append(1))  # weights unchanged
    with pytest.raises(NonFiniteLoss) as caught:
        pretrain_frontend(cfg, log=quiet)
    assert str(caught.value).startswith(
        "stage pretraining (zoom pretext, the label-free start of experiment alac_demo, seed 3), step 4/6, "
        "learning rate 0.002: the zoom pretext loss is nan (the training diverged; try a lower learning rate)")
    assert caught.value.context[1:] == ("step 4/6", "learning rate 0.002") and len(steps) == 3  # no NaN step taken


def test_a_finite_pretraining_still_finishes():
    frontend = pretrain_frontend(config(), log=quiet)
    assert isinstance(frontend, bytes) and frontend
