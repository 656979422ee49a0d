"""Reading network weights from disk or a URL, and writing our own checkpoints.

The pure name mapping and checked loading live in :mod:`models.naming`; this module adds the
file formats:

* ``.pth`` / ``.pth.tar`` / ``.pt`` (any name not ending in ``.npz``): ``torch.load`` with
  ``weights_only=True`` on CPU; a ``{"state_dict": ...}`` wrapper (CSRNet-pytorch's
  ``.pth.tar``) is unwrapped and a ``module.`` (DataParallel) prefix removed.
* ``.npz``: one array per parameter, same names as the torch files.
* our checkpoints (:func:`save_checkpoint`): a torch file holding the format tag, the network
  name and width and the state_dict, so :func:`load_model` can rebuild the network.
* ImageNet VGG16 (torchvision ``features.N.*`` naming) for the CSRNet front end, from a local
  file or a URL (``torch.hub.load_state_dict_from_url``, cached in torch's hub directory).

Naming is detected from the keys: ours, CSRNet-pytorch (``output_layer.*``) or the CSS-CCNN
reference code (``conv1_1.*``). Nothing here runs at import.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models import MODEL_CLASSES, CSRNet
from models.naming import (
    csrnet_from_external,
    cssccnn_from_reference,
    is_external_csrnet,
    is_reference_cssccnn,
    load_state_dict_checked,
    load_vgg16_frontend,
    reference_cssccnn_stage,
    strip_prefix,
)

#: Format tag of our checkpoints.
CHECKPOINT_FORMAT = "label-efficient-counting/model-v1"
#: torchvision's ImageNet VGG16 weights (used only when asked for, never in tests).
VGG16_IMAGENET_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"

#: Base channel count of the first conv of both networks (width inference for external files).
_FIRST_CONV = {"csrnet": ("frontend.0.weight", 64), "cssccnn": ("features.block1.0.weight", 64)}


class WeightsError(ValueError):
    """A weights file cannot be used: unreadable, unknown layout, wrong network. Names the file."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A network rebuilt from a weights file.

    Attributes:
        model: the network (CPU, train mode as constructed; call ``.eval()`` for inference).
        model_name: ``"csrnet"`` or ``"cssccnn"``.
        width: its width multiplier.
        naming: ``"ours"``, ``"csrnet-pytorch"`` or ``"css-ccnn-reference"``.
        missing_parts: name prefixes the file did not hold (e.g. ``("density_head.",)`` for a
            reference stage-1 checkpoint); those parts keep their initial weights.
        extra: the metadata saved with one of our checkpoints (empty otherwise).
    """

    model: nn.Module
    model_name: str
    width: float
    naming: str
    missing_parts: tuple[str, ...] = ()
    extra: dict = dataclasses.field(default_factory=dict)


def _check_model_name(model_name: str) -> str:
    if model_name not in MODEL_CLASSES:
        raise ValueError(f"model_name must be one of {sorted(MODEL_CLASSES)}, got {model_name!r}")
    return model_name


def _require_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return path


def read_weights_file(path: str | Path) -> dict:
    """Read a torch file (``weights_only=True``, CPU) or ``.npz`` and return its top-level dict
    (a state_dict, or a wrapper such as ``{"state_dict": ..., "epoch": ...}``)."""
    path = _require_file(path)
    if path.name.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: torch.from_numpy(np.array(archive[name], copy=True)) for name in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise WeightsError(f"unreadable .npz weights file {path}: {e}") from e
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"{path}: refused by torch.load(weights_only=True) (it holds Python objects other than "
            f"tensors and plain containers): {e}"
        ) from e
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise WeightsError(f"unreadable weights file {path}: {e}") from e
    if not isinstance(content, Mapping):
        raise WeightsError(f"{path}: expected a state_dict (a mapping of names to tensors), got {type(content).__name__}")
    return dict(content)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The parameter mapping of a weights file: unwraps ``state_dict`` (and ``model``
    wrappers of our checkpoints), removes a ``module.`` prefix."""
    content = read_weights_file(path)
    state = content.get("state_dict", content)
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path}: 'state_dict' entry is a {type(state).__name__}, not a mapping")
    non_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise WeightsError(f"{path}: not a state_dict; entries that are not tensors: {', '.join(map(str, non_tensors))}")
    return strip_prefix(state)


def save_checkpoint(path: str | Path, model: nn.Module, extra: Mapping | None = None) -> Path:
    """Write ``model`` (CSRNet or CSSCCNN) as one of our checkpoints and return the path.

    ``extra``: small metadata (str/int/float/bool values) stored alongside, e.g. a seed or cycle.
    Parent directories are created. Tensors are saved on CPU.
    """
    name = next((n for n, cls in MODEL_CLASSES.items() if type(model) is cls), None)
    if name is None:
        raise ValueError(f"model must be one of {[c.__name__ for c in MODEL_CLASSES.values()]}, got {type(model).__name__}")
    extra = dict(extra or {})
    bad = [k for k, v in extra.items() if not isinstance(k, str) or not isinstance(v, (str, int, float, bool))]
    if bad:
        raise ValueError(f"extra must map str to str/int/float/bool, bad entries: {bad}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": name,
        "width": float(model.width),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    torch.save(payload, path)
    return path


@dataclasses.dataclass(frozen=True)
class _FileState:
    naming: str
    state: dict[str, torch.Tensor]
    width: float | None
    allow_missing: tuple[str, ...]
    extra: dict


def _file_state(model_name: str, path: Path) -> _FileState:
    """Read ``path`` and map it to our naming for ``model_name``; width only when known."""
    content = read_weights_file(path)
    if content.get("format") == CHECKPOINT_FORMAT:
        if content.get("model") != model_name:
            raise WeightsError(f"{path} is a {content.get('model')!r} checkpoint, not {model_name!r}")
        return _FileState("ours", strip_prefix(content["state_dict"]), float(content["width"]), (), dict(content.get("extra", {})))
    state = read_state_dict(path)
    if model_name == "csrnet" and is_external_csrnet(state):
        return _FileState("csrnet-pytorch", csrnet_from_external(state), None, (), {})
    if model_name == "cssccnn" and is_reference_cssccnn(state):
        stage = reference_cssccnn_stage(state)
        allow = {1: ("density_head.",), 2: ("rotation_head.",)}.get(stage, ("density_head.", "rotation_head."))
        return _FileState("css-ccnn-reference", cssccnn_from_reference(state), None, allow, {})
    return _FileState("ours", state, None, (), {})


def _load_checked(model: nn.Module, fs: _FileState, path: Path) -> tuple[str, ...]:
    load_state_dict_checked(model, fs.state, what=f"{path} ({fs.naming} naming)", allow_missing=fs.allow_missing)
    return tuple(p for p in fs.allow_missing if not any(k.startswith(p) for k in fs.state))


def load_model(model_name: str, path: str | Path, width: float | None = None) -> LoadedModel:
    """Build the network ``model_name`` (``"csrnet"``/``"cssccnn"``) and load ``path`` into it.

    The naming is detected from the file: our checkpoints carry their width; external files
    (CSRNet-pytorch, CSS-CCNN reference, plain state_dicts in our naming) get ``width`` or, when
    it is None, the width implied by the first conv (64 channels = 1.0). A reference CSS-CCNN
    file holds one head only; the other keeps its initial weights (see
    :attr:`LoadedModel.missing_parts`). Mismatched names or shapes raise
    :class:`models.StateDictMismatchError` listing all of them.
    """
    _check_model_name(model_name)
    path = _require_file(path)
    fs = _file_state(model_name, path)
    if fs.width is not None and width is not None and float(width) != fs.width:
        raise WeightsError(f"{path} holds a width-{fs.width} network, width {width} was asked for")
    if fs.width is not None:
        width = fs.width
    elif width is None:
        key, base = _FIRST_CONV[model_name]
        if key not in fs.state:
            raise WeightsError(f"{path}: cannot infer the {model_name} width, no entry {key!r}")
        width = fs.state[key].shape[0] / base
    model = MODEL_CLASSES[model_name](width=width)
    missing_parts = _load_checked(model, fs, path)
    return LoadedModel(model, model_name, float(width), fs.naming, missing_parts, fs.extra)


def load_weights_into(model: nn.Module, path: str | Path) -> tuple[str, ...]:
    """Load a weights file (any supported naming) into an existing CSRNet/CSSCCNN of the right
    width; returns the name prefixes the file did not hold (see :func:`load_model`)."""
    name = next((n for n, cls in MODEL_CLASSES.items() if type(model) is cls), None)
    if name is None:
        raise ValueError(f"model must be one of {[c.__name__ for c in MODEL_CLASSES.values()]}, got {type(model).__name__}")
    path = _require_file(path)
    return _load_checked(model, _file_state(name, path), path)


def load_vgg16_imagenet(model: CSRNet, source: str | Path = VGG16_IMAGENET_URL, progress: bool = False) -> CSRNet:
    """Load ImageNet VGG16 weights (torchvision naming) into ``model.frontend`` and return it.

    ``source``: a local ``.pth``/``.npz`` file, or an ``http(s)://`` URL fetched through
    ``torch.hub.load_state_dict_from_url`` (downloads once into torch's hub cache; needs
    network access). Only ``CSRNet(width=1.0)`` has matching shapes.
    """
    if not isinstance(model, CSRNet):
        raise ValueError(f"model must be a CSRNet, got {type(model).__name__}")
    text = str(source)
    if text.startswith(("http://", "https://")):
        state = torch.hub.load_state_dict_from_url(text, map_location="cpu", progress=progress, weights_only=True)
        what = f"VGG16 weights from {text}"
    else:
        state = read_state_dict(source)
        what = f"VGG16 weights {source}"
    load_vgg16_frontend(model, state, what=what)
    return model


__all__ = [
    "CHECKPOINT_FORMAT",
    "VGG16_IMAGENET_URL",
    "WeightsError",
    "LoadedModel",
    "read_weights_file",
    "read_state_dict",
    "save_checkpoint",
    "load_model",
    "load_weights_into",
    "load_vgg16_imagenet",
]
