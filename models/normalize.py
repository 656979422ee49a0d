"""Input normalisation for every network, in one place.

Each function takes images as a ``torch.Tensor`` or ``numpy.ndarray``, either one image
``(H, W, 3)`` (channels last, as the dataset layer returns it) or a batch ``(B, 3, H, W)``, in one
of two value conventions:

* ``uint8``: 0..255;
* floating point: 0..1 (a float input whose maximum exceeds 2 is rejected with ``ValueError``:
  it is almost certainly 0..255 data, which must be passed as ``uint8``).

They return a NEW ``float32`` tensor ``(B, 3, H, W)`` (``B = 1`` for a single ``(H, W, 3)``
image) on the input tensor's device (CPU for numpy input). The caller's data is never modified.

* CSRNet (:func:`normalize_csrnet`): ImageNet mean/std on 0..1 RGB.
* CSS-CCNN (:func:`normalize_cssccnn`): RGB on 0..255 minus ``(104.008, 116.669, 122.675)``
  channel by channel (R - 104.008, G - 116.669, B - 122.675, exactly as the reference code
  subtracts them from its RGB input), no division.
"""

from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CSSCCNN_MEAN_0_255: tuple[float, float, float] = (104.008, 116.669, 122.675)

#: A float input above this maximum is taken for 0..255 data and rejected.
_FLOAT_MAX_ALLOWED = 2.0


def _as_float_batch(images, name: str) -> tuple[torch.Tensor, float]:
    """``images`` as a float32 ``(B, 3, H, W)`` tensor and its full-scale value (255.0 for uint8
    input, 1.0 for float input). The tensor may share memory with the input: callers only apply
    out-of-place operations to it."""
    if isinstance(images, np.ndarray):
        array = images if images.flags.writeable else images.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    elif isinstance(images, torch.Tensor):
        tensor = images
    else:
        raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(images).__name__}")

    if tensor.ndim == 3 and tensor.shape[-1] == 3:
        tensor = tensor.permute(2, 0, 1).unsqueeze(0)
    elif not (tensor.ndim == 4 and tensor.shape[1] == 3):
        raise ValueError(f"{name} must have shape (H, W, 3) or (B, 3, H, W), got {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(tensor.shape)}")

    if tensor.dtype == torch.uint8:
        return tensor.to(torch.float32), 255.0
    if tensor.is_floating_point():
        peak = float(tensor.detach().max())
        if not np.isfinite(peak) or peak > _FLOAT_MAX_ALLOWED:
            raise ValueError(
                f"{name}: float images must lie in 0..1, got maximum {peak}; pass 0..255 data as uint8"
            )
        return tensor.to(torch.float32), 1.0
    raise ValueError(f"{name} must be uint8 (0..255) or floating (0..1), got dtype {tensor.dtype}")


def _per_channel(values: tuple[float, float, float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=like.device).view(1, 3, 1, 1)


def normalize_csrnet(images) -> torch.Tensor:
    """ImageNet normalisation for CSRNet: ``(x/255 - mean) / std`` per RGB channel.

    ``(H, W, 3)`` or ``(B, 3, H, W)``, uint8 0..255 or float 0..1 -> new float32 ``(B, 3, H, W)``.
    """
    batch, full_scale = _as_float_batch(images, "images")
    unit = batch / full_scale
    return (unit - _per_channel(IMAGENET_MEAN, unit)) / _per_channel(IMAGENET_STD, unit)


def normalize_cssccnn(images) -> torch.Tensor:
    """CSS-CCNN normalisation: RGB on 0..255 minus ``(104.008, 116.669, 122.675)``.

    ``(H, W, 3)`` or ``(B, 3, H, W)``, uint8 0..255 or float 0..1 -> new float32 ``(B, 3, H, W)``.
    """
    batch, full_scale = _as_float_batch(images, "images")
    # uint8 input is used as is (exact); float 0..1 input is scaled to 0..255.
    scaled = batch * (255.0 / full_scale)
    return scaled - _per_channel(CSSCCNN_MEAN_0_255, scaled)
