"""Arrays for the CSS-CCNN stages: image preparation, seeded crop plans, rotation views,
validation views, and the fixed held-out list.

Conventions: images are ``(H, W, 3) uint8`` RGB; crops are square, ``crop`` pixels per side,
with top-left corners on multiples of 8 (as the reference's ``train_get_data``), so a crop's
1/8-resolution density is an exact block of the image's. (Cell counts of density maps are
:func:`ot.cells.cell_counts`.)
Every random choice takes a ``numpy.random.Generator``; nothing reads global random state.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

#: Rotation classes of stage 1: k quarter turns counter-clockwise (0, 90, 180, 270 degrees).
NUM_ROTATIONS = 4
#: Crop corners are multiples of this (the networks' output stride).
CROP_GRID = 8


def fit_min_side(image: np.ndarray, min_side: int) -> np.ndarray:
    """Upscale ``image`` ``(H, W, 3) uint8`` so that ``min(H, W) >= min_side`` (aspect ratio
    kept, bilinear), as the reference does for images below 224 px. Larger images are returned
    unchanged (the same object). Counts are unaffected: only pixels are resampled, and
    evaluation compares the sum of the predicted density with the annotated count."""
    height, width = image.shape[:2]
    if min(height, width) >= min_side:
        return image
    scale = min_side / min(height, width)
    new_h, new_w = max(min_side, int(round(height * scale))), max(min_side, int(round(width * scale)))
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """One square crop: ``image_index`` into the stage's image list, ``top``/``left`` corner
    (pixels, multiples of 8), ``flip`` = mirror left-right after cutting, ``rotation`` =
    quarter turns (stage 1 only; 0 otherwise)."""

    image_index: int
    top: int
    left: int
    flip: bool = False
    rotation: int = 0


def _corner(extent: int, crop: int, rng: np.random.Generator) -> int:
    room = extent - crop
    if room <= 0:
        return 0
    return int(rng.integers(0, room + 1)) // CROP_GRID * CROP_GRID


def plan_crops(sizes: list[tuple[int, int]], crop: int, num_crops: int, rng: np.random.Generator,
               flip: bool = True, rotations: bool = False) -> list[CropSpec]:
    """``num_crops`` random crops, visiting the images in shuffled order (one crop per image per
    pass, passes repeated when ``num_crops`` exceeds the number of images).

    Args:
        sizes: ``(height, width)`` per image, each side ``>= crop``.
        crop: crop side in pixels.
        num_crops: how many crops to plan.
        rng: the only source of randomness.
        flip: draw a random left-right flip per crop.
        rotations: draw a rotation class in ``0..3`` per crop (stage 1).
    """
    if not sizes:
        raise ValueError("sizes: no images to crop from")
    order: list[int] = []
    while len(order) < num_crops:
        order += [int(i) for i in rng.permutation(len(sizes))]
    specs = []
    for index in order[:num_crops]:
        height, width = sizes[index]
        specs.append(CropSpec(index, _corner(height, crop, rng), _corner(width, crop, rng),
                              bool(rng.integers(2)) if flip else False,
                              int(rng.integers(NUM_ROTATIONS)) if rotations else 0))
    return specs


def cut(array: np.ndarray, spec: CropSpec, crop: int) -> np.ndarray:
    """The ``crop x crop`` window of ``array`` (``(H, W)`` or ``(H, W, C)``) at ``spec``,
    flipped when ``spec.flip``; a new contiguous array."""
    window = array[spec.top:spec.top + crop, spec.left:spec.left + crop]
    if window.shape[0] != crop or window.shape[1] != crop:
        raise ValueError(f"crop {crop} at ({spec.top}, {spec.left}) does not fit an image of "
                         f"{array.shape[:2]}")
    if spec.flip:
        window = window[:, ::-1]
    return np.ascontiguousarray(window)


def rotation_view(crop_image: np.ndarray, rotation: int) -> np.ndarray:
    """Stage-1 input: the centre half of a square crop (side ``crop // 2`` at offset
    ``crop // 4``, as the reference's 112 of 224) turned ``rotation`` quarter turns
    counter-clockwise. ``(c, c, 3) uint8`` -> ``(c//2, c//2, 3) uint8``."""
    side = crop_image.shape[0]
    inner, offset = side // 2, side // 4
    centre = crop_image[offset:offset + inner, offset:offset + inner]
    return np.ascontiguousarray(np.rot90(centre, k=int(rotation)))


def centre_rotations(image: np.ndarray, inner: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out view of stage 1: the ``inner x inner`` centre of ``image`` in all four
    rotations -> ``(4, inner, inner, 3) uint8`` and labels ``[0, 1, 2, 3]``."""
    height, width = image.shape[:2]
    if min(height, width) < inner:
        raise ValueError(f"image {height}x{width} is smaller than the {inner} px rotation view")
    top, left = (height - inner) // 2, (width - inner) // 2
    centre = image[top:top + inner, left:left + inner]
    views = np.stack([np.ascontiguousarray(np.rot90(centre, k)) for k in range(NUM_ROTATIONS)])
    return views, np.arange(NUM_ROTATIONS)


def fixed_crop_specs(sizes: list[tuple[int, int]], crop: int, per_image: int,
                     rng: np.random.Generator) -> list[CropSpec]:
    """Validation crops fixed once: ``per_image`` crops per image (no flip), image by image."""
    return [CropSpec(i, _corner(h, crop, rng), _corner(w, crop, rng))
            for i, (h, w) in enumerate(sizes) for _ in range(per_image)]


def choose_holdout(ids: list[str], fraction: float, seed: int) -> list[str]:
    """The held-out part of the train images (stage-1 rotation accuracy and stage-2 validation):
    ``max(1, round(fraction * len(ids)))`` ids drawn with ``default_rng([seed, 7919])``, returned
    in pool order. Computed once per trial and stored; never drawn from the test split."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    if len(ids) < 2:
        raise ValueError(f"need at least 2 train images to hold some out, got {len(ids)}")
    count = min(len(ids) - 1, max(1, int(round(fraction * len(ids)))))
    picked = set(np.random.default_rng([seed, 7919]).choice(len(ids), size=count, replace=False).tolist())
    return [item for n, item in enumerate(ids) if n in picked]
