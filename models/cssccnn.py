"""The CSS-CCNN networks (Babu Sam et al., "Completely Self-Supervised Crowd Counting").

One module holds the three parts of the reference code's Stage1CountingNet/Stage2CountingNet:

* ``features`` (:class:`FeatureExtractor`, the FEN): three VGG blocks of bias-free 3x3 convs,
  each conv followed by BatchNorm and ReLU, ``(64, 64) pool (128, 128) pool (256, 256, 256)``.
  It returns both the pooled block-2 features (128 ch, 1/4 resolution) and the block-3 features
  (256 ch, 1/4 resolution).
* ``rotation_head`` (stage 1): pool, conv 256->128 (no bias) + BN + ReLU, pool,
  conv 128->64 (no bias) + BN + ReLU, global average pool, linear 64->4. The four logits are the
  rotation classes 0, 90, 180, 270 degrees. (METHOD.md lists the convs; the BatchNorms after them
  are the reference code's.)
* ``density_head`` (stage 2): concatenate pooled block-2 and block-3 features (384 ch) ->
  conv 3x3 384->128 + ReLU -> conv 3x3 128->64 + ReLU -> 2x2 max-pool -> conv 3x3 64->1 + ReLU.
  Output at 1/8 resolution, non-negative.

Inputs are CSS-CCNN-normalised images (:func:`models.normalize.normalize_cssccnn`). As in
:class:`models.CSRNet`, the input is zero-padded at the bottom and right up to a multiple of 8,
so an ``H x W`` input gives a ``(ceil(H/8), ceil(W/8))`` density map (a 224 crop gives 28 x 28);
zero after normalisation is the mean colour.

Stage 2 trains only the density head: :meth:`CSSCCNN.freeze_features` stops gradients into the
FEN and keeps its BatchNorm layers in eval mode (running statistics frozen) even when
``model.train()`` is called afterwards.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from models.layers import check_image_batch, check_width, default_generator, pad_to_multiple, scaled_channels
from models.normalize import normalize_cssccnn

#: Number of rotation classes (0, 90, 180, 270 degrees).
NUM_ROTATIONS = 4


@dataclasses.dataclass(frozen=True)
class FENOutput:
    """The two feature maps the density head consumes, both ``(B, C, ceil(H/4'), ceil(W/4'))``
    where ``H', W'`` are the input size padded to a multiple of 8.

    Attributes:
        block2_pooled: ``(B, 128*width, H'/4, W'/4)`` block-2 features after its max-pool.
        block3: ``(B, 256*width, H'/4, W'/4)`` block-3 features.
    """

    block2_pooled: torch.Tensor
    block3: torch.Tensor


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def _vgg_block(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += _conv_bn_relu(in_channels if i == 0 else out_channels, out_channels)
    return nn.Sequential(*layers)


class FeatureExtractor(nn.Module):
    """The CSS-CCNN feature extraction network (FEN), 7 conv + BatchNorm + ReLU layers.

    Input: normalised ``(B, 3, H, W)`` float; output :class:`FENOutput`.
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = (scaled_channels(c, width) for c in (64, 128, 256))
        self.block1 = _vgg_block(3, c1, 2)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.block2 = _vgg_block(c1, c2, 2)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.block3 = _vgg_block(c2, c3, 3)
        self.block2_channels = c2
        self.block3_channels = c3

    def forward(self, x: torch.Tensor) -> FENOutput:
        check_image_batch(x)
        block2_pooled = self.pool2(self.block2(self.pool1(self.block1(pad_to_multiple(x)))))
        return FENOutput(block2_pooled=block2_pooled, block3=self.block3(block2_pooled))


class CSSCCNN(nn.Module):
    """CSS-CCNN: feature extractor + rotation head (stage 1) + density head (stage 2).

    Args:
        width: channel multiplier, ``1.0`` = the paper's network; every layer gets
            ``max(1, round(c * width))`` channels.
        generator: seeds the initialisation: Kaiming-normal (ReLU gain, fan-in) for the FEN and
            rotation-head convs and the linear layer (its bias 0), ``N(0, 0.01)`` with zero bias
            for the density-head convs, BatchNorm weight 1 / bias 0, as in the reference code.
            ``None`` uses a fresh generator seeded 0.

    ``forward(x)`` returns the density ``(B, 1, ceil(H/8), ceil(W/8))``;
    ``rotation_logits(x)`` returns ``(B, 4)``.
    """

    #: ``(H, W, 3)``/``(B, 3, H, W)`` uint8 0..255 or float 0..1 -> RGB 0..255 minus the mean.
    normalize = staticmethod(normalize_cssccnn)

    def __init__(self, width: float = 1.0, generator: torch.Generator | None = None):
        super().__init__()
        self.width = check_width(width)
        self.features = FeatureExtractor(self.width)
        c3 = self.features.block3_channels
        r1, r2 = scaled_channels(128, self.width), scaled_channels(64, self.width)
        self.rotation_head = nn.Sequential(
            nn.MaxPool2d(kernel_size=2, stride=2),
            *_conv_bn_relu(c3, r1),
            nn.MaxPool2d(kernel_size=2, stride=2),
            *_conv_bn_relu(r1, r2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(r2, NUM_ROTATIONS),
        )
        d1, d2 = scaled_channels(128, self.width), scaled_channels(64, self.width)
        self.density_head = nn.Sequential(
            nn.Conv2d(self.features.block2_channels + c3, d1, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d1, d2, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(d2, 1, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )
        self._features_frozen = False
        self._initialise(default_generator(generator))

    def _initialise(self, gen: torch.Generator) -> None:
        for part in (self.features, self.rotation_head):
            for module in part.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=gen)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
        for module in self.density_head.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, mean=0.0, std=0.01, generator=gen)
                nn.init.zeros_(module.bias)

    # ----------------------------------------------------------------------------------------
    def extract(self, x: torch.Tensor) -> FENOutput:
        """FEN features of a normalised ``(B, 3, H, W)`` batch (see :class:`FENOutput`)."""
        return self.features(x)

    def density_from_features(self, fen: FENOutput) -> torch.Tensor:
        """Density head on FEN features: ``(B, 1, H'/8, W'/8)``, non-negative."""
        return self.density_head(torch.cat((fen.block2_pooled, fen.block3), dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Density ``(B, 1, ceil(H/8), ceil(W/8))`` of a normalised ``(B, 3, H, W)`` batch."""
        return self.density_from_features(self.extract(x))

    def rotation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Rotation-class logits ``(B, 4)`` (0, 90, 180, 270 degrees) of a normalised batch."""
        return self.rotation_head(self.extract(x).block3)

    # ----------------------------------------------------------------------------------------
    @property
    def features_frozen(self) -> bool:
        """Whether :meth:`freeze_features` is in effect."""
        return self._features_frozen

    def freeze_features(self) -> CSSCCNN:
        """Freeze the FEN for stage 2: no gradients into its convs and BatchNorm affine
        parameters, and its BatchNorm layers stay in eval mode (running mean/var are used, not
        updated), also after later ``model.train()`` calls. Returns ``self``.

        Only parameters with ``requires_grad`` should go to the optimiser, e.g.
        ``SGD(model.density_head.parameters(), ...)``.
        """
        self._features_frozen = True
        for parameter in self.features.parameters():
            parameter.requires_grad_(False)
        self.features.eval()
        return self

    def unfreeze_features(self) -> CSSCCNN:
        """Undo :meth:`freeze_features` (the FEN follows ``model.train()/eval()`` again)."""
        self._features_frozen = False
        for parameter in self.features.parameters():
            parameter.requires_grad_(True)
        self.features.train(self.training)
        return self

    def train(self, mode: bool = True) -> CSSCCNN:
        super().train(mode)
        if self._features_frozen:
            self.features.eval()
        return self

    def extra_repr(self) -> str:
        return f"width={self.width}, features_frozen={self._features_frozen}"
