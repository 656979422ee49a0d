"""Networks and their losses: a pure library (tensors in, tensors out; no files, no config).

* :class:`CSRNet` (+ :class:`DomainClassifier`, gradient reversal, latent MixUp, AL-AC losses)
* :class:`CSSCCNN` (feature extractor, rotation head, density head, freezing for stage 2)
* label-free pretext tasks for a front end (:mod:`models.pretext`: rotation prediction)
* input normalisation per network (:mod:`models.normalize`)
* state_dict naming maps and checked loading (:mod:`models.naming`)

Both networks output density at 1/8 resolution, ``(B, 1, ceil(H/8), ceil(W/8))``, for any
input size (inputs are zero-padded bottom/right to a multiple of 8 after normalisation).
"""

from types import MappingProxyType

from models.csrnet import CSRNet, DomainClassifier
from models.cssccnn import CSSCCNN, FeatureExtractor, FENOutput
from models.layers import GradientReversal, gradient_reversal, output_size, pad_to_multiple, scaled_channels
from models.losses import (
    DEFAULT_BETA,
    AlignmentLoss,
    alignment_loss,
    density_regression_loss,
    domain_classification_loss,
)
from models.mixup import DEFAULT_MIXUP_ALPHA, LatentMixUp, latent_mixup, sample_mixup_weights
from models.naming import StateDictMismatchError, load_state_dict_checked
from models.normalize import normalize_csrnet, normalize_cssccnn
from models.pretext import RotationHead, rotated_views

#: Network name -> class, as used by configs and the evaluate CLI.
MODEL_CLASSES = MappingProxyType({"csrnet": CSRNet, "cssccnn": CSSCCNN})

__all__ = [
    "RotationHead",
    "rotated_views",
    "CSRNet",
    "CSSCCNN",
    "DomainClassifier",
    "FeatureExtractor",
    "FENOutput",
    "GradientReversal",
    "gradient_reversal",
    "LatentMixUp",
    "latent_mixup",
    "sample_mixup_weights",
    "density_regression_loss",
    "domain_classification_loss",
    "alignment_loss",
    "AlignmentLoss",
    "DEFAULT_BETA",
    "DEFAULT_MIXUP_ALPHA",
    "normalize_csrnet",
    "normalize_cssccnn",
    "StateDictMismatchError",
    "load_state_dict_checked",
    "output_size",
    "pad_to_multiple",
    "scaled_channels",
    "MODEL_CLASSES",
]
