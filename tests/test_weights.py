"""Weight files: our checkpoints, CSRNet-pytorch naming, CSS-CCNN reference naming, ImageNet
VGG16 for the CSRNet front end, and the errors for files that do not fit. Nothing downloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import orchestrator.core.weights as weights
from models import CSSCCNN, CSRNet, StateDictMismatchError
from models.naming import csrnet_to_external, cssccnn_to_reference
from orchestrator.core.weights import (
    WeightsError,
    load_model,
    load_vgg16_imagenet,
    load_weights_into,
    read_state_dict,
    save_checkpoint,
)

NARROW = 0.125


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(seed: int, h: int = 29, w: int = 35) -> torch.Tensor:
    return torch.randn(1, 3, h, w, generator=seeded(seed))


def _same_output(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    a.eval(), b.eval()
    with torch.no_grad():
        return torch.equal(a(x), b(x))


# ------------------------------------------------------------------------- our own checkpoints
@pytest.mark.parametrize("cls, name", [(CSRNet, "csrnet"), (CSSCCNN, "cssccnn")])
def test_checkpoint_round_trip_restores_width_weights_and_metadata(tmp_path, cls, name):
    model = cls(width=0.2, generator=seeded(1))
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, extra={"seed": 3, "stage": "two"})
    loaded = load_model(name, path)
    assert loaded.naming == "ours" and loaded.width == 0.2 and loaded.extra == {"seed": 3, "stage": "two"}
    assert type(loaded.model) is cls
    assert _same_output(model, loaded.model, _image(2) * 40)
    fresh = cls(width=0.2, generator=seeded(9))
    assert load_weights_into(fresh, path) == ()
    assert _same_output(model, fresh, _image(3) * 40)


def test_checkpoint_of_the_other_network_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", CSRNet(NARROW))
    with pytest.raises(WeightsError, match="'csrnet' checkpoint, not 'cssccnn'"):
        load_model("cssccnn", path)
    with pytest.raises(WeightsError, match="width"):
        load_model("csrnet", path, width=0.5)
    with pytest.raises(ValueError, match="model_name"):
        load_model("resnet", path)


def test_plain_state_dict_in_our_naming_infers_the_width(tmp_path):
    model = CSRNet(width=0.25, generator=seeded(4))
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    loaded = load_model("csrnet", tmp_path / "plain.pth")
    assert loaded.width == 0.25 and _same_output(model, loaded.model, _image(5))


# ---------------------------------------------------------------------- CSRNet-pytorch naming
def _external_csrnet(scale: int) -> nn.Module:
    """A network built the way CSRNet-pytorch builds it (``make_layers``: conv + ReLU per entry,
    'M' = max-pool, every layer counted in the Sequential), channels divided by ``scale``."""

    def make_layers(cfg, in_channels, dilation):
        layers = []
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_channels, v // scale, 3, padding=dilation, dilation=dilation), nn.ReLU()]
                in_channels = v // scale
        return nn.Sequential(*layers)

    class External(nn.Module):
        def __init__(self):
            super().__init__()
            self.frontend = make_layers([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512], 3, 1)
            self.backend = make_layers([512, 512, 512, 256, 128, 64], 512 // scale, 2)
            self.output_layer = nn.Conv2d(64 // scale, 1, 1)

        def forward(self, x):
            return self.output_layer(self.backend(self.frontend(x)))

    torch.manual_seed(0)  # the external network is built with torch's own default init
    net = External()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=seeded(21)) * 0.05)
    return net.eval()


@pytest.mark.parametrize("layout", ["pth", "pth.tar", "npz", "dataparallel"])
def test_external_csrnet_checkpoint_loads_and_gives_identical_outputs(tmp_path, layout):
    external = _external_csrnet(scale=8)
    state = external.state_dict()
    assert "frontend.5.weight" in state and "backend.10.weight" in state and "output_layer.weight" in state
    if layout == "pth":
        path = tmp_path / "csrnet.pth"
        torch.save(state, path)
    elif layout == "pth.tar":
        path = tmp_path / "PartBmodel_best.pth.tar"
        torch.save({"epoch": 7, "arch": "csrnet", "state_dict": state, "best_prec1": torch.tensor(9.5)}, path)
    elif layout == "npz":
        path = tmp_path / "csrnet.npz"
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    else:
        path = tmp_path / "csrnet_dp.pth"
        torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    loaded = load_model("csrnet", path)
    assert loaded.naming == "csrnet-pytorch" and loaded.width == NARROW
    x = _image(6, 40, 48)  # a multiple of 8: the external network does not pad
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), external(x))


def test_our_csrnet_exports_to_the_external_naming():
    model = CSRNet(NARROW, seeded(8))
    external = _external_csrnet(scale=8)
    exported = csrnet_to_external(model.state_dict())
    assert set(exported) == set(external.state_dict())
    external.load_state_dict(exported)
    x = _image(9, 32, 24)
    with torch.no_grad():
        assert torch.equal(external(x), model.eval()(x))


# ------------------------------------------------------------------------------------ errors
def test_mismatched_names_and_shapes_are_listed_in_one_error_and_nothing_is_loaded(tmp_path):
    model = CSRNet(NARROW, seeded(10))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    del state["backend.2.bias"]
    state["backend.99.weight"] = torch.zeros(1)
    state["frontend.0.weight"] = torch.zeros(5, 3, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    target = CSRNet(NARROW, seeded(11))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(StateDictMismatchError) as info:
        load_weights_into(target, tmp_path / "bad.pth")
    message = str(info.value)
    assert "backend.2.bias" in message and "backend.99.weight" in message and "frontend.0.weight" in message
    assert "(8, 3, 3, 3)" in message and "(5, 3, 3, 3)" in message and str(tmp_path / "bad.pth") in message
    assert info.value.missing == ["backend.2.bias"] and info.value.unexpected == ["backend.99.weight"]
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_missing_and_unreadable_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_model("csrnet", tmp_path / "nowhere.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pth"):
        read_state_dict(garbage)
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"nope")
    with pytest.raises(WeightsError, match="bad.npz"):
        read_state_dict(bad_npz)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="list.pth"):
        read_state_dict(tmp_path / "list.pth")


def test_pickled_objects_are_refused_by_weights_only(tmp_path):
    torch.save({"state_dict": CSRNet(NARROW).state_dict(), "net": nn.Linear(1, 1)}, tmp_path / "pickled.pth")
    with pytest.raises(WeightsError, match="weights_only"):
        read_state_dict(tmp_path / "pickled.pth")


# ------------------------------------------------------------------------------ ImageNet VGG16
def _fake_vgg16_state() -> dict[str, torch.Tensor]:
    """torchvision ``vgg16().features`` names and shapes (13 convs), small fake classifier."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    state, index, channels = {}, 0, 3
    g = seeded(12)
    for v in cfg:
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(v, channels, 3, 3, generator=g) * 0.01
        state[f"features.{index}.bias"] = torch.randn(v, generator=g)
        channels, index = v, index + 2
    state["classifier.0.weight"] = torch.zeros(4, 4)
    state["classifier.6.bias"] = torch.zeros(4)
    return state


def test_vgg16_imagenet_weights_fill_the_frontend_from_a_local_file(tmp_path):
    vgg = _fake_vgg16_state()
    torch.save(vgg, tmp_path / "vgg16.pth")
    model = CSRNet(generator=seeded(13))
    backend_before = model.backend[0].weight.clone()
    assert load_vgg16_imagenet(model, tmp_path / "vgg16.pth") is model
    for index in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21):
        assert torch.equal(model.frontend[index].weight, vgg[f"features.{index}.weight"])
        assert torch.equal(model.frontend[index].bias, vgg[f"features.{index}.bias"])
    assert torch.equal(model.backend[0].weight, backend_before)


def test_vgg16_errors_name_vgg_parameters_and_narrow_networks_are_refused(tmp_path):
    vgg = _fake_vgg16_state()
    del vgg["features.7.bias"]
    vgg["head.weight"] = torch.zeros(1)
    torch.save(vgg, tmp_path / "vgg16_bad.pth")
    with pytest.raises(StateDictMismatchError, match=r"features\.7\.bias(.|\n)*head\.weight"):
        load_vgg16_imagenet(CSRNet(), tmp_path / "vgg16_bad.pth")
    torch.save(_fake_vgg16_state(), tmp_path / "vgg16.pth")
    with pytest.raises(StateDictMismatchError, match="shape of features.0.weight"):
        load_vgg16_imagenet(CSRNet(width=0.5), tmp_path / "vgg16.pth")


def test_vgg16_url_goes_through_torch_hub(monkeypatch):
    calls = []

    def fake_hub(url, **kwargs):
        calls.append((url, kwargs))
        return _fake_vgg16_state()

    monkeypatch.setattr(weights.torch.hub, "load_state_dict_from_url", fake_hub)
    model = load_vgg16_imagenet(CSRNet(), "https://example.invalid/vgg16.pth")
    assert calls[0][0] == "https://example.invalid/vgg16.pth"
    assert calls[0][1]["map_location"] == "cpu" and calls[0][1]["weights_only"] is True
    assert torch.equal(model.frontend[21].bias, _fake_vgg16_state()["features.21.bias"])


# ----------------------------------------------------------------- CSS-CCNN reference naming
def test_reference_cssccnn_stage2_checkpoint_loads_with_identical_density(tmp_path):
    model = CSSCCNN(NARROW, seeded(14))
    with torch.no_grad():  # non-trivial BN statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1, generator=seeded(15))
                m.running_var.uniform_(0.5, 2, generator=seeded(16))
    reference = cssccnn_to_reference(model.state_dict(), stage=2)
    assert {"conv1_1.weight", "batch_norm_3_3.running_var", "conv4_2.bias", "conv5_1.weight"} <= set(reference)
    assert "fc.weight" not in reference
    torch.save({"state_dict": reference, "epoch": 3}, tmp_path / "stage2.pth")
    loaded = load_model("cssccnn", tmp_path / "stage2.pth")
    assert loaded.naming == "css-ccnn-reference" and loaded.missing_parts == ("rotation_head.",)
    assert _same_output(model, loaded.model, _image(17, 48, 40) * 50)


def test_reference_cssccnn_stage1_checkpoint_loads_the_rotation_head(tmp_path):
    model = CSSCCNN(NARROW, seeded(18)).eval()
    reference = cssccnn_to_reference(model.state_dict(), stage=1)
    assert {"fc.weight", "batch_norm_5_1.running_mean", "conv4_1.weight"} <= set(reference)
    torch.save(reference, tmp_path / "stage1.pth")
    loaded = load_model("cssccnn", tmp_path / "stage1.pth")
    assert loaded.missing_parts == ("density_head.",)
    x = _image(19, 112, 112) * 50
    with torch.no_grad():
        assert torch.equal(loaded.model.eval().rotation_logits(x), model.rotation_logits(x))
