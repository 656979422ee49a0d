"""Training patches as in AL-AC (METHOD.md): quarter-size random crops, augmented up to a
reference number, paired into minibatches of two cropped to a common size, random flips.

Every choice comes from the ``numpy.random.Generator`` passed in, so a seed fixes the patches.
Crop offsets and sizes are multiples of ``align`` (8 by default): the density crop's 8x8 block
sums are then exactly the network's 1/8 target for the image crop, with no resampling.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class PatchSpec:
    """One crop of one image: rows ``top:top+height``, columns ``left:left+width``, pixels.

    ``image_index`` indexes the image list the plan was made for; ``flip`` mirrors columns.
    """

    image_index: int
    top: int
    left: int
    height: int
    width: int
    flip: bool


def crops_per_image(n_images: int, reference_total: int = 1200) -> int:
    """Crops per image so that ``n_images`` images give at least ``reference_total`` patches
    (30 labeled images -> 40 crops each, as in the paper)."""
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    if reference_total < 1:
        raise ValueError(f"reference_total must be >= 1, got {reference_total}")
    return math.ceil(reference_total / n_images)


def _patch_side(side: int, align: int, fraction: float = 0.5) -> int:
    """``fraction`` of ``side`` (0.5: the paper's quarter-size patches) rounded down to a multiple
    of ``align`` (at least ``align``, at most ``side``)."""
    return min(side, max(align, int(side * fraction) // align * align))


def _offset(rng: np.random.Generator, room: int, align: int) -> int:
    """A random offset in ``[0, room]`` that is a multiple of ``align``."""
    return int(rng.integers(0, room // align + 1)) * align


def plan_patches(image_sizes: Sequence[tuple[int, int]], rng: np.random.Generator, *,
                 reference_total: int = 1200, align: int = 8, flip_probability: float = 0.5,
                 side_fraction: float = 0.5) -> list[PatchSpec]:
    """Random quarter-size crops (half height x half width) for every image, shuffled.

    Args:
        image_sizes: ``(H, W)`` per image, pixels.
        rng: the only source of randomness.
        reference_total: augment to at least this many patches in all
            (:func:`crops_per_image` crops per image).
        align: crop offsets and sizes are multiples of this (8: the network stride).
        flip_probability: chance of a horizontal flip per patch.
        side_fraction: patch side / image side (0.5 = the paper's quarter-size patches; 1.0 =
            whole images, flipped).

    Returns:
        ``crops_per_image(len(image_sizes)) * len(image_sizes)`` specs in random order.
    """
    if not image_sizes:
        raise ValueError("plan_patches: image_sizes is empty")
    if not 0 < side_fraction <= 1:
        raise ValueError(f"plan_patches: side_fraction must lie in (0, 1], got {side_fraction}")
    per_image = crops_per_image(len(image_sizes), reference_total)
    specs = []
    for index, (height, width) in enumerate(image_sizes):
        if height < align or width < align:
            raise ValueError(f"plan_patches: image {index} is {height}x{width}, smaller than align={align}")
        ch, cw = _patch_side(height, align, side_fraction), _patch_side(width, align, side_fraction)
        for _ in range(per_image):
            specs.append(PatchSpec(index, _offset(rng, height - ch, align), _offset(rng, width - cw, align),
                                   ch, cw, bool(rng.random() < flip_probability)))
    order = rng.permutation(len(specs))
    return [specs[i] for i in order]


def pair_patches(specs: Sequence[PatchSpec], rng: np.random.Generator, align: int = 8) -> list[tuple[PatchSpec, PatchSpec]]:
    """Consecutive specs as minibatches of two, both cropped (at a random aligned position
    inside each) to the smaller height and the smaller width of the pair. An odd last spec is
    paired with a random earlier one."""
    specs = list(specs)
    if len(specs) % 2:
        specs.append(specs[int(rng.integers(0, len(specs) - 1))] if len(specs) > 1 else specs[0])
    pairs = []
    for a, b in zip(specs[0::2], specs[1::2]):
        h, w = min(a.height, b.height), min(a.width, b.width)
        pairs.append(tuple(
            dataclasses.replace(s, top=s.top + _offset(rng, s.height - h, align),
                                left=s.left + _offset(rng, s.width - w, align), height=h, width=w)
            for s in (a, b)
        ))
    return pairs


def group_pairs(pairs: Sequence[tuple[PatchSpec, PatchSpec]], pairs_per_step: int, rng: np.random.Generator,
                align: int = 8) -> list[tuple[PatchSpec, ...]]:
    """Consecutive pairs as minibatches of ``pairs_per_step`` pairs, ordered first samples then
    second samples (``(a1, .., aP, b1, .., bP)``: sample ``i`` pairs with ``i + P``, as the
    alignment loss expects), all cropped (at a random aligned position inside each) to the
    smallest height and width of the minibatch. A last incomplete group is dropped.
    ``pairs_per_step = 1`` returns the pairs unchanged without drawing from ``rng``."""
    if pairs_per_step < 1:
        raise ValueError(f"group_pairs: pairs_per_step must be >= 1, got {pairs_per_step}")
    if pairs_per_step == 1:
        return [tuple(pair) for pair in pairs]
    batches = []
    for start in range(0, len(pairs) - pairs_per_step + 1, pairs_per_step):
        group = pairs[start:start + pairs_per_step]
        specs = [pair[0] for pair in group] + [pair[1] for pair in group]
        h, w = min(s.height for s in specs), min(s.width for s in specs)
        batches.append(tuple(
            dataclasses.replace(s, top=s.top + _offset(rng, s.height - h, align),
                                left=s.left + _offset(rng, s.width - w, align), height=h, width=w)
            for s in specs
        ))
    return batches


def extract_patch(image: np.ndarray, density: np.ndarray, spec: PatchSpec) -> tuple[np.ndarray, np.ndarray]:
    """Copy the crop of ``spec`` out of ``image`` ``(H, W, 3)`` and ``density`` ``(H, W)``
    (full resolution), flipped if asked. The inputs are never modified."""
    if image.shape[:2] != density.shape:
        raise ValueError(f"extract_patch: image {image.shape[:2]} and density {density.shape} differ in size")
    rows = slice(spec.top, spec.top + spec.height)
    cols = slice(spec.left, spec.left + spec.width)
    img, den = image[rows, cols], density[rows, cols]
    if img.shape[:2] != (spec.height, spec.width):
        raise ValueError(f"extract_patch: {spec} does not fit in an image of size {image.shape[:2]}")
    if spec.flip:
        img, den = img[:, ::-1], den[:, ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(den)
