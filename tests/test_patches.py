"""AL-AC training patches: quarter crops, augmentation to a reference number, pairs, flips."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.data.density import DensityConfig, block_sum, density_map
from orchestrator.data.patches import crops_per_image, extract_patch, group_pairs, pair_patches, plan_patches


def test_crops_per_image_reaches_reference():
    assert crops_per_image(30) == 40  # the paper's example
    assert crops_per_image(40) == 30
    assert crops_per_image(7) * 7 >= 1200 and (crops_per_image(7) - 1) * 7 < 1200
    with pytest.raises(ValueError, match="n_images"):
        crops_per_image(0)


def test_plan_is_quarter_size_aligned_and_inside():
    sizes = [(768, 1024), (300, 451), (17, 33)]
    specs = plan_patches(sizes, np.random.default_rng(0), reference_total=30)
    assert len(specs) == 30
    for s in specs:
        h, w = sizes[s.image_index]
        assert s.height == min(h, max(8, (h // 2) // 8 * 8)) and s.width == min(w, max(8, (w // 2) // 8 * 8))
        assert s.top % 8 == 0 and s.left % 8 == 0
        assert 0 <= s.top and s.top + s.height <= h and 0 <= s.left and s.left + s.width <= w
    assert {s.image_index for s in specs} == {0, 1, 2}
    assert 0 < sum(s.flip for s in specs) < 30


def test_same_seed_same_patches_other_seed_other_patches():
    sizes = [(200, 300)] * 5
    a = plan_patches(sizes, np.random.default_rng(7), reference_total=100)
    b = plan_patches(sizes, np.random.default_rng(7), reference_total=100)
    c = plan_patches(sizes, np.random.default_rng(8), reference_total=100)
    assert a == b and a != c
    assert pair_patches(a, np.random.default_rng(1)) == pair_patches(b, np.random.default_rng(1))


def test_pairs_share_size_and_stay_inside_their_crop():
    sizes = [(768, 1024), (300, 451), (120, 96)]
    specs = plan_patches(sizes, np.random.default_rng(3), reference_total=21)
    pairs = pair_patches(specs, np.random.default_rng(4))
    assert len(pairs) == 11  # 21 specs: the odd one is paired with an earlier spec
    for a, b in pairs:
        assert (a.height, a.width) == (b.height, b.width)
        for s in (a, b):
            h, w = sizes[s.image_index]
            assert s.top % 8 == 0 and s.left % 8 == 0 and s.top + s.height <= h and s.left + s.width <= w


def test_groups_of_pairs_share_one_size_and_keep_the_pairing():
    sizes = [(768, 1024), (300, 451), (120, 96)]
    pairs = pair_patches(plan_patches(sizes, np.random.default_rng(3), reference_total=21), np.random.default_rng(4))
    assert group_pairs(pairs, 1, np.random.default_rng(0)) == pairs  # the paper's minibatch of two, untouched
    groups = group_pairs(pairs, 3, np.random.default_rng(5))
    assert len(groups) == 3  # 11 pairs: the last two do not fill a group
    for g, group in enumerate(groups):
        assert len({(s.height, s.width) for s in group}) == 1
        assert group[0].height == min(s.height for p in pairs[3 * g:3 * g + 3] for s in p)
        for i in range(3):  # sample i is paired with sample i + 3, each inside its original crop
            for spec, original in ((group[i], pairs[3 * g + i][0]), (group[i + 3], pairs[3 * g + i][1])):
                assert spec.image_index == original.image_index and spec.flip == original.flip
                assert original.top <= spec.top and spec.top + spec.height <= original.top + original.height
                assert spec.top % 8 == 0 and spec.left % 8 == 0
    with pytest.raises(ValueError, match="pairs_per_step must be >= 1"):
        group_pairs(pairs, 0, np.random.default_rng(0))


def test_extracted_density_crop_is_exact_and_flip_mirrors():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    pts = np.c_[rng.uniform(0, 128, 60), rng.uniform(0, 96, 60)]
    density = density_map(pts, (96, 128), DensityConfig(sigma=2.0))
    spec = plan_patches([(96, 128)], np.random.default_rng(0), reference_total=1)[0]
    from dataclasses import replace
    plain = replace(spec, flip=False)
    flipped = replace(spec, flip=True)
    img, den = extract_patch(image, density, plain)
    img_f, den_f = extract_patch(image, density, flipped)
    assert img.shape == (48, 64, 3) and den.shape == (48, 64)
    np.testing.assert_array_equal(img_f, img[:, ::-1])
    np.testing.assert_array_equal(den_f, den[:, ::-1])
    # aligned crops: the 1/8 target of the crop is exactly the matching blocks of the full target
    full = block_sum(density, 8)
    np.testing.assert_allclose(block_sum(den, 8), full[spec.top // 8:(spec.top + 48) // 8, spec.left // 8:(spec.left + 64) // 8])
    before = image.copy()
    img[...] = 0
    np.testing.assert_array_equal(image, before)  # crops are copies


def test_side_fraction_one_takes_whole_images():
    rng = np.random.default_rng(0)
    specs = plan_patches([(64, 96)], rng, reference_total=4, side_fraction=1.0)
    assert {(s.top, s.left, s.height, s.width) for s in specs} == {(0, 0, 64, 96)}
    with pytest.raises(ValueError, match="side_fraction"):
        plan_patches([(64, 96)], rng, side_fraction=0.0)
