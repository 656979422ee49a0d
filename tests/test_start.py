"""How a counter starts (issue 12): an initialisation that trains from random weights, the
label-free (self-supervised) start cached once and reused, and the start validated before work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models import CSRNet, RotationHead, rotated_views
from orchestrator.alac.pretrain import KIND, pretrain_key
from orchestrator.alac.trial import ALACTrial
from orchestrator.config import ConfigError, load_config
from orchestrator.core.cache import cached, entry_dir

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs/alac/demo.yaml"
TINY = ["dataset.options.n_train=10", "dataset.options.n_test=3", "dataset.options.height=64",
        "dataset.options.width=64", "alac.initial=2", "alac.per_cycle=2", "alac.budget=4",
        "model.self_supervised.steps=6", "model.self_supervised.crops=2", "model.self_supervised.crop=32"]


def quiet(_msg):
    pass


def _counts_of_different_images(init: str) -> np.ndarray:
    torch.manual_seed(0)
    model = CSRNet(width=0.25, generator=torch.Generator().manual_seed(3), init=init).eval()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(6)]
    images += [np.zeros((96, 96, 3), np.uint8), np.full((96, 96, 3), 255, np.uint8)]
    with torch.no_grad():
        return np.array([float(model(CSRNet.normalize(im)).sum()) for im in images])


def test_a_randomly_started_network_answers_its_input():
    """With He init the predicted counts of different images differ; the paper's N(0, 0.01)
    everywhere (meant behind an ImageNet front end) collapses them onto the output bias."""
    kaiming, normal = _counts_of_different_images("kaiming"), _counts_of_different_images("normal")
    assert np.ptp(kaiming) > 1e-3 * max(1.0, float(np.abs(kaiming).mean()))
    assert np.ptp(kaiming) > 1e4 * np.ptp(normal)  # measured: ~1e-8 vs ~1e-1 relative spread


def test_init_is_seeded_and_checked():
    a = CSRNet(width=0.125, generator=torch.Generator().manual_seed(5), init="kaiming").state_dict()
    b = CSRNet(width=0.125, generator=torch.Generator().manual_seed(5), init="kaiming").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="init must be one of"):
        CSRNet(width=0.125, init="xavier")


def test_rotated_views_and_head_shapes():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    views, labels = rotated_views(x)
    assert views.shape == (8, 3, 4, 4) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(views[:2], x) and torch.equal(views[2], torch.rot90(x[0], 1, dims=(1, 2)))
    assert RotationHead(3)(torch.ones(5, 3, 7, 7)).shape == (5, 4)
    with pytest.raises(ValueError, match="squares"):
        rotated_views(torch.ones(1, 3, 4, 5))


def test_the_start_is_resolved_and_validated_before_work(tmp_path):
    assert load_config(DEMO, "smoke", ["model.start=random"]).model.resolved_init == "kaiming"
    assert load_config(DEMO, "smoke", ["model.start=random", "model.init=normal"]).model.resolved_init == "normal"
    imagenet = load_config(DEMO, "smoke", [f"model.pretrained={tmp_path / 'vgg.pth'}"]).model
    assert (imagenet.resolved_start, imagenet.resolved_init) == ("imagenet", "normal")
    for override, message in [("model.start=pretrained_somehow", "model.start: unknown start"),
                              ("model.start=imagenet", "model.start imagenet needs model.pretrained"),
                              ("model.start=weights", "model.start weights needs model.weights"),
                              ("model.init=xavier", "model.init: unknown init"),
                              ("model.self_supervised.steps=0", "model.self_supervised.steps must be >= 1"),
                              ("alac.train.optimizer=lbfgs", "alac.train.optimizer: unknown optimizer")]:
        with pytest.raises(ConfigError, match=message):
            load_config(DEMO, "smoke", [override])
    with pytest.raises(ConfigError, match="model.start self_supervised does not use model.weights"):
        load_config(DEMO, "smoke", ["model.start=self_supervised", f"model.weights={tmp_path / 'w.pt'}"])
    missing = load_config(DEMO, "smoke", [f"model.weights={tmp_path / 'none.pt'}"])
    with pytest.raises(ConfigError, match="model.weights: file not found"):
        ALACTrial(missing, tmp_path / "t", log=quiet)
    result = subprocess.run([sys.executable, "-m", "orchestrator.trial", "--config", str(DEMO), "--scale", "smoke",
                             "--set", "model.start=imagenet", "--out", str(tmp_path / "cli")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "model.start imagenet needs model.pretrained" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "cli").exists()


def test_cache_computes_once_and_keys_by_content(tmp_path):
    calls = []
    value = lambda: calls.append(1) or b"frontend"
    assert cached(tmp_path, "thing", {"a": 1}, value, log=quiet) == (b"frontend", False)
    assert cached(tmp_path, "thing", {"a": 1}, value, log=quiet) == (b"frontend", True)
    assert cached(tmp_path, "thing", {"a": 2}, value, log=quiet) == (b"frontend", False)
    assert len(calls) == 2
    meta = json.loads((entry_dir(tmp_path, "thing", {"a": 1}) / "key.json").read_text())
    assert meta["key"] == {"a": 1} and meta["seconds"] >= 0


def test_self_supervised_start_is_computed_once_and_reused_by_other_trials(tmp_path):
    """A smoke trial from the label-free start trains; a second trial (another strategy, same
    seed) reuses the cached pretraining without recomputing it; another seed gets its own."""
    cache = tmp_path / "cache"
    first = load_config(DEMO, "smoke", TINY + ["model.start=self_supervised"], seed=0)
    rows = ALACTrial(first, tmp_path / "pssw", log=quiet, cache_dir=cache).run()
    entry = entry_dir(cache, KIND, pretrain_key(first)) / "value.bin"
    stamp = entry.stat().st_mtime_ns
    assert list(rows["pretraining"]) == ["computed"] * len(rows) and set(rows["model_start"]) == {"self_supervised"}
    assert rows["train_loss"].notna().all() and np.isfinite(rows["mae"]).all()

    second = load_config(DEMO, "smoke", TINY + ["model.start=self_supervised", "alac.strategy=random"], seed=0)
    assert pretrain_key(second) == pretrain_key(first)  # the strategy is not part of the key
    again = ALACTrial(second, tmp_path / "random", log=quiet, cache_dir=cache).run()
    assert set(again["pretraining"]) == {"cached"} and entry.stat().st_mtime_ns == stamp
    other_seed = load_config(DEMO, "smoke", TINY + ["model.start=self_supervised"], seed=1)
    assert pretrain_key(other_seed) != pretrain_key(first)

    # the trial's starting weights carry the pretrained front end, not the seeded init
    started = torch.load(tmp_path / "pssw" / "checkpoint.pt", weights_only=False)
    assert started["pretraining"] == "computed"
    random_start = CSRNet(width=first.model.width, generator=torch.Generator().manual_seed(0), init="kaiming")
    from orchestrator.alac.trial import initial_model

    model, note = initial_model(first, cache, log=quiet)
    assert note == "cached"
    assert not torch.equal(model.frontend[0].weight, random_start.frontend[0].weight)
    assert torch.equal(model.backend[0].weight, random_start.backend[0].weight)


def test_zoom_pretext_trains_a_front_end(tmp_path):
    config = load_config(DEMO, "smoke", TINY + ["model.start=self_supervised", "model.self_supervised.task=zoom"])
    from orchestrator.alac.pretrain import pretrained_frontend

    frontend, hit = pretrained_frontend(config, tmp_path, log=quiet)
    start = CSRNet(width=config.model.width, generator=torch.Generator().manual_seed(0), init="kaiming")
    assert not hit and not torch.equal(frontend["0.weight"], start.frontend[0].weight)
    with pytest.raises(ConfigError, match="unknown task"):
        load_config(DEMO, "smoke", ["model.self_supervised.task=jigsaw"])


def test_a_few_hundred_steps_from_random_weights_beat_the_mean_predictor(tmp_path):
    """The demo's training settings from a random (He) start: one training of 12 random labeled
    crowds (the paper's one-shot RS baseline, no alignment) gets the test MAE below that of
    predicting the labeled images' mean count."""
    config = load_config(DEMO, "demo", ["alac.strategy=rs_baseline", "alac.budget=12", "alac.per_cycle=8", "alac.train.epochs=8",
                                        "dataset.options.n_test=12", "ray.torch_threads=2"], seed=0)
    row = ALACTrial(config, tmp_path / "t", log=quiet).run().iloc[-1]
    assert row["train_steps"] >= 200 and row["model_start"] == "random"  # minibatches of four patches (pairs_per_step 2)
    # measured 16.1 vs 51.4 (37.1 vs 43.7 with one pair a step and no clipping)
    assert row["mae"] < row["mean_baseline_mae"], (row["mae"], row["mean_baseline_mae"])


def test_one_optimiser_factory_for_both_loops():
    from orchestrator.config.schema import OPTIMIZERS as CONFIG_OPTIMIZERS
    from orchestrator.core.tensors import OPTIMIZERS, build_optimizer

    params = [torch.nn.Parameter(torch.ones(2))]
    assert isinstance(build_optimizer(params, "adam", 1e-3, 0.9, 0.0), torch.optim.Adam)
    sgd = build_optimizer(params, "sgd", 1e-3, 0.9, 5e-4)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    assert OPTIMIZERS == CONFIG_OPTIMIZERS
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer(params, "lbfgs", 1e-3, 0.9, 0.0)
    from orchestrator.cssccnn.trial import CSSCCNNTrial

    with pytest.raises(ConfigError, match="cssccnn.stage2.optimizer must be one of"):
        css = load_config(ROOT / "configs/cssccnn/demo.yaml", "smoke", ["cssccnn.stage2.optimizer=rmsprop"])
        CSSCCNNTrial.validate(css, 12)


def test_every_alac_row_carries_its_mean_baseline(tmp_path):
    """``mean_baseline_mae``: every test image predicted as the mean count of the images labeled
    by that cycle."""
    config = load_config(DEMO, "smoke", TINY, seed=0)
    trial = ALACTrial(config, tmp_path / "t", log=quiet)
    rows = trial.run()
    true = np.array([item.count for item in trial.test], dtype=float)
    for _, row in rows.iterrows():
        mean = np.mean([trial.pool.by_id(i).count for i in json.loads(row["labeled_ids"])])
        assert row["mean_baseline_mae"] == pytest.approx(np.abs(true - mean).mean(), rel=1e-12)
