"""CSRNet (Li et al., CVPR 2018) and the AL-AC distribution classifier branch.

Layout (the paper's network at ``width=1.0``, 16,263,489 parameters):

* ``frontend``: VGG16's first 10 3x3 convs with ReLU and 3 max-pools,
  ``64 64 M 128 128 M 256 256 256 M 512 512 512``. It is an ``nn.Sequential`` whose indices
  equal torchvision's ``vgg16().features`` indices (convs at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21),
  so ImageNet weights map one to one (see :mod:`models.naming`).
* ``backend``: six 3x3 convs with dilation 2 and ReLU, ``512 512 512 256 128 64``.
* ``density_head``: a 1x1 conv to one channel (``output_layer`` in CSRNet-pytorch).

The backbone features ``phi`` (the output of the back end, after its last ReLU, the layer
before the 1x1 density conv) are exposed by :meth:`CSRNet.features`; the AL-AC distribution
classifier (:class:`DomainClassifier`) branches off there.

Sizes not divisible by 8: :meth:`CSRNet.features` zero-pads the (already normalised) input at
the bottom and right up to the next multiple of 8, so the density output of an ``H x W`` input
is exactly ``(ceil(H/8), ceil(W/8))``. The dataset layer builds its 1/8 ground truth the same
way (zero padding to a multiple of 8, then 8x8 block sums), so prediction and target align
cell for cell. Zero after normalisation is the ImageNet mean colour.
"""

from __future__ import annotations

import torch
from torch import nn

from models.layers import (
    GradientReversal,
    check_image_batch,
    check_width,
    default_generator,
    pad_to_multiple,
    scaled_channels,
)
from models.normalize import normalize_csrnet

#: Front-end configuration (VGG16 up to conv4_3); ``"M"`` = 2x2 max-pool.
FRONTEND_CONFIG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
#: Back-end configuration: 3x3 convs with dilation 2.
BACKEND_CONFIG: tuple[int, ...] = (512, 512, 512, 256, 128, 64)
#: Indices of the convs inside ``frontend`` (= torchvision ``vgg16().features`` indices).
FRONTEND_CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)
#: Indices of the convs inside ``backend``.
BACKEND_CONV_INDICES: tuple[int, ...] = (0, 2, 4, 6, 8, 10)
#: Initialisations of the convs (biases 0 in both): ``normal`` = N(0, 0.01) everywhere
#: (CSRNet-pytorch; meant for a back end behind an ImageNet front end: from random weights the
#: activations vanish through the 16-layer ReLU stack and the network predicts its output bias);
#: ``kaiming`` = He normal (fan_in, gain sqrt 2) for every ReLU conv of the front and back end,
#: made for a random start of a deep ReLU stack without BatchNorm; the 1x1 density head keeps
#: N(0, 0.01) in both.
INITS: tuple[str, ...] = ("normal", "kaiming")


def _make_layers(config, in_channels: int, width: float, dilation: int) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    channels = in_channels
    for entry in config:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            out = scaled_channels(int(entry), width)
            layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=dilation, dilation=dilation))
            layers.append(nn.ReLU(inplace=True))
            channels = out
    return nn.Sequential(*layers), channels


class CSRNet(nn.Module):
    """CSRNet density regressor.

    Args:
        width: channel multiplier, ``1.0`` = the paper's network; every conv gets
            ``max(1, round(c * width))`` output channels (``0.25`` is a ~1 M-parameter copy of
            the same network for tests and CPU demos).
        generator: seeds the initialisation. ``None`` uses a fresh generator seeded 0, so
            unseeded networks are identical. ImageNet front-end weights are loaded afterwards
            by ``orchestrator.core.weights``.
        init: ``"normal"`` (every conv ``N(0, 0.01)``, as in CSRNet-pytorch) or ``"kaiming"``
            (He normal for the ReLU convs, the density head ``N(0, 0.01)``); see :data:`INITS`.

    Input: normalised images ``(B, 3, H, W)`` float (see :meth:`normalize`), any ``H, W >= 1``.
    Output of :meth:`forward`: density ``(B, 1, ceil(H/8), ceil(W/8))``, people per output
    pixel (sum = predicted count).
    """

    #: ``(H, W, 3)``/``(B, 3, H, W)`` uint8 0..255 or float 0..1 -> ImageNet-normalised float32.
    normalize = staticmethod(normalize_csrnet)

    def __init__(self, width: float = 1.0, generator: torch.Generator | None = None, init: str = "normal"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.width = check_width(width)
        self.frontend, channels = _make_layers(FRONTEND_CONFIG, 3, self.width, dilation=1)
        self.backend, channels = _make_layers(BACKEND_CONFIG, channels, self.width, dilation=2)
        #: Number of channels of ``phi`` (64 at width 1.0).
        self.feature_channels = channels
        self.density_head = nn.Conv2d(channels, 1, kernel_size=1)
        gen = default_generator(generator)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if init == "kaiming" and module is not self.density_head:
                    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu", generator=gen)
                else:
                    nn.init.normal_(module.weight, mean=0.0, std=0.01, generator=gen)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features phi: ``(B, 3, H, W)`` normalised -> ``(B, C, ceil(H/8), ceil(W/8))``,
        ``C = feature_channels``; the input is zero-padded bottom/right to a multiple of 8."""
        check_image_batch(x)
        return self.backend(self.frontend(pad_to_multiple(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Density map ``(B, 1, ceil(H/8), ceil(W/8))`` of a normalised ``(B, 3, H, W)`` batch."""
        return self.density_head(self.features(x))

    def extra_repr(self) -> str:
        return f"width={self.width}"


class DomainClassifier(nn.Module):
    """AL-AC distribution classifier branch on phi: GRL -> 1x1 conv -> global average pool.

    Args:
        in_channels: channels of phi (``CSRNet.feature_channels``).
        grl_multiplier: factor the gradient reversal applies to the gradient flowing back into
            phi (``-1`` in the paper: exact sign flip; the forward is the identity).
        generator: seeds the 1x1 conv init (``N(0, 0.01)``, bias 0); ``None`` = seeded 0.

    Input ``(B, C, h, w)`` features; output ``(B,)`` logits, labeled = 0, unlabeled = 1.
    """

    def __init__(self, in_channels: int, grl_multiplier: float = -1.0, generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        self.gradient_reversal = GradientReversal(grl_multiplier)
        self.conv = nn.Conv2d(in_channels, 1, kernel_size=1)
        nn.init.normal_(self.conv.weight, mean=0.0, std=0.01, generator=default_generator(generator))
        nn.init.zeros_(self.conv.bias)

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        if phi.ndim != 4 or phi.shape[1] != self.conv.in_channels:
            raise ValueError(
                f"phi must have shape (B, {self.conv.in_channels}, h, w), got {tuple(phi.shape)}"
            )
        return self.conv(self.gradient_reversal(phi)).mean(dim=(1, 2, 3))
