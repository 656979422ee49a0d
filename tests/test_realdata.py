"""The real datasets in $COUNTING_DATA_ROOT: exact point totals, every image readable, every
density target count-exact. Skipped with a reason when the variable is unset."""

from __future__ import annotations

import pytest
from conftest import real_dataset_dir

from orchestrator.data import block_sum, density_map, get_spec, open_dataset
from orchestrator.data.inspect import inspect_dataset

pytestmark = pytest.mark.realdata

SHANGHAITECH = {
    # dataset, folder, split: (images, points)
    ("shanghaitech_a", "ShanghaiTech/part_A", "train"): (300, 162_413),
    ("shanghaitech_a", "ShanghaiTech/part_A", "test"): (182, 78_862),
    ("shanghaitech_b", "ShanghaiTech/part_B", "train"): (400, 49_151),
    ("shanghaitech_b", "ShanghaiTech/part_B", "test"): (316, 39_121),
}


def assert_density_exact(dataset):
    """Every item's density map and its 8x8 block sums carry the item's count (rel. err < 1e-4)."""
    config = get_spec(dataset.name).density
    for item in dataset:
        h, w = item.size
        density = density_map(item.points, (h, w), config)
        for total in (density.sum(), block_sum(density, 8).sum()):
            assert abs(total - item.count) <= 1e-4 * max(item.count, 1), (item.id, total, item.count)


@pytest.mark.parametrize("key", list(SHANGHAITECH), ids=lambda k: f"{k[0]}-{k[2]}")
def test_shanghaitech_every_image_reads_with_exact_totals(data_root, key):
    name, folder, split = key
    root = real_dataset_dir(data_root, folder)
    report = inspect_dataset(name, root, [split], progress=False)  # decodes every image
    stats = report["splits"][split]
    assert report["problems"] == []
    images, points = SHANGHAITECH[key]
    assert stats["images"] == stats["readable"] == images and stats["points"] == points
    assert_density_exact(open_dataset(name, root, split))


def test_ucf_cc_50_total_and_reported_outside_points(data_root):
    root = real_dataset_dir(data_root, "UCF_CC_50")
    report = inspect_dataset("ucf_cc_50", root, ["all"], progress=False)
    stats = report["splits"]["all"]
    assert stats["images"] == 50 and stats["dropped_outside_points"] == 5
    assert stats["points"] == 63_974 - 5
    assert sorted(p["item"] for p in report["problems"]) == ["1", "17", "20", "6"]
    assert all(p["severity"] == "warning" for p in report["problems"])
    ds = open_dataset("ucf_cc_50", root, "all")
    assert sum(len(it.raw_points) for it in ds) == 63_974
    assert_density_exact(ds)


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_ucf_cc_50_folds_partition_the_images(data_root, fold):
    root = real_dataset_dir(data_root, "UCF_CC_50")
    train, test = (set(open_dataset("ucf_cc_50", root, s, fold=fold).ids) for s in ("train", "test"))
    assert len(train) == 40 and len(test) == 10 and not train & test


def test_vgg_cells_counts(data_root):
    root = real_dataset_dir(data_root, "VGG_cells/cells")
    counts = {s: [it.count for it in open_dataset("vgg_cells", root, s)] for s in ("train", "test", "all")}
    assert len(counts["train"]) == 100 and len(counts["test"]) == 100
    assert sum(counts["all"]) == 35_192 == sum(counts["train"]) + sum(counts["test"])
    assert (min(counts["all"]), max(counts["all"])) == (74, 317)
    assert_density_exact(open_dataset("vgg_cells", root, "all"))
