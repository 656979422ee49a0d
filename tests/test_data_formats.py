"""Every supported annotation format, written as a tiny fixture here and read back exactly."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import scipy.io
from conftest import write_dots, write_image

from orchestrator.data import DatasetError, open_dataset


def write_shanghaitech_mat(path, points):
    record = np.empty((1, 1), dtype=[("location", "O"), ("number", "O")])
    record[0, 0]["location"] = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    record[0, 0]["number"] = np.array([[len(points)]], dtype=np.uint16)
    info = np.empty((1, 1), dtype=object)
    info[0, 0] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"image_info": info})


def make_shanghaitech(root, counts=(3, 0, 5)):
    expected = {}
    for split in ("train", "test"):
        for n, count in enumerate(counts, 1):
            pts = np.random.default_rng(n).uniform([0, 0], [64, 48], size=(count, 2))
            write_image(root / f"{split}_data/images/IMG_{n}.jpg", seed=n)
            write_shanghaitech_mat(root / f"{split}_data/ground-truth/GT_IMG_{n}.mat", pts)
            expected[f"{split}/IMG_{n}"] = pts
    return expected


def test_shanghaitech_layout_reads_exact_points(tmp_path):
    expected = make_shanghaitech(tmp_path)
    ds = open_dataset("shanghaitech_a", tmp_path, "test")
    assert ds.ids == ["test/IMG_1", "test/IMG_2", "test/IMG_3"]
    for item in ds:
        np.testing.assert_array_equal(item.points, expected[item.id])
        assert item.points.dtype == np.float64 and item.points.shape[1] == 2
        assert item.load_image().shape == (48, 64, 3)
    assert ds[1].count == 0  # an empty annotation is valid data


def test_items_are_lazy_and_pickle(tmp_path):
    make_shanghaitech(tmp_path)
    ds = open_dataset("shanghaitech_b", tmp_path, "train")
    (tmp_path / "train_data/ground-truth/GT_IMG_1.mat").write_bytes(b"garbage")
    # opening read nothing but listings; the broken file shows up only when the item is used
    clone = pickle.loads(pickle.dumps(ds[0]))
    with pytest.raises(DatasetError, match="GT_IMG_1.mat"):
        clone.points
    assert pickle.loads(pickle.dumps(ds[2])).count == 5


def test_grayscale_images_load_as_rgb(tmp_path):
    write_image(tmp_path / "all" / "a.jpg", gray=True)
    (tmp_path / "all" / "a.csv").write_text("x,y\n1,2\n")
    item = open_dataset("folder", tmp_path / "all", "all")[0]
    img = item.load_image()
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], img[..., 1])


def test_mall_mat_and_frames(tmp_path):
    rng = np.random.default_rng(0)
    locs = [rng.uniform([0, 0], [64, 48], size=(k, 2)) for k in (4, 1, 0, 7, 2)]
    # MATLAB layout: a cell array of 1x1 structs with field 'loc'
    frame = np.empty((1, len(locs)), dtype=object)
    for i, pts in enumerate(locs):
        record = np.empty((1, 1), dtype=[("loc", "O")])
        record[0, 0]["loc"] = pts
        frame[0, i] = record
        write_image(tmp_path / f"frames/seq_{i + 1:06d}.jpg", seed=i)
    scipy.io.savemat(tmp_path / "mall_gt.mat", {"frame": frame, "count": np.array([[len(p)] for p in locs])})
    train = open_dataset("mall", tmp_path, "train", n_train=3)
    test = open_dataset("mall", tmp_path, "test", n_train=3)
    assert train.ids == ["seq_000001", "seq_000002", "seq_000003"] and test.ids == ["seq_000004", "seq_000005"]
    for item, pts in zip([*train, *test], locs):
        np.testing.assert_array_equal(item.points, pts)


def test_trancos_dots_and_split_lists(tmp_path):
    pixels = {"image-1-000001": [(3, 4), (3, 5), (40, 60)], "image-1-000002": [], "image-2-000003": [(0, 0)]}
    for name, px in pixels.items():
        write_image(tmp_path / f"images/{name}.jpg")
        write_dots(tmp_path / f"images/{name}dots.png", 48, 64, px)
    (tmp_path / "image_sets").mkdir()
    (tmp_path / "image_sets/training.txt").write_text("image-1-000001.jpg\nimage-1-000002.jpg\n")
    (tmp_path / "image_sets/test.txt").write_text("image-2-000003.jpg\n")
    train = open_dataset("trancos", tmp_path, "train", roi=False)  # no region-of-interest files here
    assert train.ids == ["image-1-000001", "image-1-000002"]
    # touching dots count as two: we count marked pixels, at their centres
    np.testing.assert_array_equal(train[0].points, [[4.5, 3.5], [5.5, 3.5], [60.5, 40.5]])
    assert train[1].count == 0
    assert open_dataset("trancos", tmp_path, "test", roi=False)[0].count == 1
    with pytest.raises(DatasetError, match="mask.mat"):  # the benchmark's regions are applied by default
        open_dataset("trancos", tmp_path, "train")


def test_trancos_regions_of_interest_mask_image_points_and_count(tmp_path):
    """``<name>mask.mat`` (key ``BW``): by default pixels outside the region are black and
    vehicles outside it are dropped, so counts and targets cover the region only."""
    from orchestrator.config import DatasetConfig
    from orchestrator.core.samples import load_sample

    write_image(tmp_path / "images/image-1-000001.jpg", 48, 64, seed=3)
    write_dots(tmp_path / "images/image-1-000001dots.png", 48, 64, [(3, 4), (3, 5), (40, 60), (30, 10)])
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[:, :32] = 1  # the left half is evaluated: (40, 60) falls outside
    scipy.io.savemat(tmp_path / "images/image-1-000001mask.mat", {"BW": mask})
    (tmp_path / "image_sets").mkdir()
    (tmp_path / "image_sets/training.txt").write_text("image-1-000001.jpg\n")
    item = open_dataset("trancos", tmp_path, "train")[0]
    np.testing.assert_array_equal(item.points, [[4.5, 3.5], [5.5, 3.5], [10.5, 30.5]])
    image, whole = item.load_image(), open_dataset("trancos", tmp_path, "train", roi=False)[0]
    assert whole.count == 4 and item.count == 3
    assert (image[:, 32:] == 0).all() and (image[:, :32] == whole.load_image()[:, :32]).all()
    sample = load_sample(item, DatasetConfig(name="trancos", root=str(tmp_path), train_split="train"))
    assert sample.count == 3 and sample.density.sum() == pytest.approx(3, abs=1e-4)
    with pytest.raises(DatasetError, match="roi must be true or false"):
        open_dataset("trancos", tmp_path, "train", roi="yes")
    scipy.io.savemat(tmp_path / "images/image-1-000001mask.mat", {"BW": mask[:40]})
    with pytest.raises(DatasetError, match="region of interest is"):
        open_dataset("trancos", tmp_path, "train")[0].load_image()


def test_dcc_dots_folder(tmp_path):
    write_image(tmp_path / "trainval/images/cell_a.png")
    write_dots(tmp_path / "trainval/dots/cell_a.png", 48, 64, [(10, 10), (20, 30)])
    write_image(tmp_path / "test/images/cell_b.png")
    write_dots(tmp_path / "test/dots/cell_b.png", 48, 64, [(1, 2)])
    assert open_dataset("dcc", tmp_path, "train").ids == ["train/cell_a"]
    np.testing.assert_array_equal(open_dataset("dcc", tmp_path, "train")[0].points, [[10.5, 10.5], [30.5, 20.5]])
    np.testing.assert_array_equal(open_dataset("dcc", tmp_path, "test")[0].points, [[2.5, 1.5]])


def test_ucf_qnrf_ann_mat(tmp_path):
    pts = np.array([[1.5, 2.5], [63.0, 47.0], [10.25, 0.0]])
    for split in ("Train", "Test"):
        write_image(tmp_path / split / "img_0001.jpg")
        scipy.io.savemat(tmp_path / split / "img_0001_ann.mat", {"annPoints": pts})
    item = open_dataset("ucf_qnrf", tmp_path, "test")[0]
    assert item.id == "test/img_0001"
    np.testing.assert_array_equal(item.points, pts)


def test_jhu_txt_lines(tmp_path):
    write_image(tmp_path / "val/images/0001.jpg")
    (tmp_path / "val/gt").mkdir(parents=True)
    (tmp_path / "val/gt/0001.txt").write_text("10 20 5 5 1 0\n30.5 40.25 8 8 2 1\n\n")
    write_image(tmp_path / "val/images/0002.jpg")
    (tmp_path / "val/gt/0002.txt").write_text("")
    ds = open_dataset("jhu_crowd", tmp_path, "val")
    np.testing.assert_array_equal(ds[0].points, [[10, 20], [30.5, 40.25]])
    assert ds[1].count == 0


def test_jhu_malformed_line_names_file_and_line(tmp_path):
    write_image(tmp_path / "train/images/0001.jpg")
    (tmp_path / "train/gt").mkdir(parents=True)
    (tmp_path / "train/gt/0001.txt").write_text("10 20 5 5 1 0\nabc def\n")
    with pytest.raises(DatasetError, match=r"0001.txt:2"):
        open_dataset("jhu_crowd", tmp_path, "train")[0].points


@pytest.mark.parametrize("text", [
    "x,y\n1,2\n3.5,4\n",
    "1,2\n3.5,4\n",
    "id,y,x\n0,2,1\n1,4,3.5\n",
])
def test_folder_csv_variants(tmp_path, text):
    write_image(tmp_path / "a.png")
    (tmp_path / "a.csv").write_text(text)
    np.testing.assert_array_equal(open_dataset("folder", tmp_path, "all")[0].points, [[1, 2], [3.5, 4]])


@pytest.mark.parametrize("payload", [
    {"points": [[1, 2], [3.5, 4]]},
    [[1, 2], [3.5, 4]],
    [{"x": 1, "y": 2}, {"x": 3.5, "y": 4}],
])
def test_folder_json_variants(tmp_path, payload):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "a.json").write_text(json.dumps(payload))
    np.testing.assert_array_equal(open_dataset("folder", tmp_path, "all")[0].points, [[1, 2], [3.5, 4]])


def test_folder_train_test_splits(tmp_path):
    for split in ("train", "test"):
        write_image(tmp_path / split / "x.png")
        (tmp_path / split / "x.json").write_text('{"points": []}')
    assert open_dataset("folder", tmp_path, "train").ids == ["train/x"]
    with pytest.raises(DatasetError, match="unknown split 'all'; choose from \\['train', 'test'\\]"):
        open_dataset("folder", tmp_path, "all")


def test_dataset_scale_shrinks_every_image_by_one_factor_and_max_side_by_its_own():
    """``dataset.scale``: people keep one size across images of different resolutions (what a
    per-cell prior needs); ``max_side``: each image gets the factor that fits its long side."""
    from types import SimpleNamespace

    from orchestrator.config import DatasetConfig
    from orchestrator.core.samples import load_sample

    rng = np.random.default_rng(0)
    big = SimpleNamespace(id="big", load_image=lambda: rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),
                          points=np.array([[10.0, 20.0], [127.0, 95.0], [64.0, 48.0]]))
    small = SimpleNamespace(id="small", load_image=lambda: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
                            points=np.array([[8.0, 8.0]]))
    scaled = [load_sample(item, DatasetConfig(scale=0.5)) for item in (big, small)]
    assert [s.image.shape[:2] for s in scaled] == [(48, 64), (24, 32)]
    np.testing.assert_allclose(scaled[0].points, [[5.0, 10.0], [63.5, 47.5], [32.0, 24.0]])
    assert [s.count for s in scaled] == [3, 1]
    assert [float(s.density.sum()) for s in scaled] == pytest.approx([3.0, 1.0], abs=1e-4)
    capped = [load_sample(item, DatasetConfig(max_side=64)) for item in (big, small)]
    assert [s.image.shape[:2] for s in capped] == [(48, 64), (48, 64)]  # the small one is kept as it is
