"""The dataset layer's common types: one lazily loaded item, one split of a dataset, errors.

Conventions used everywhere in the project:

* points are ``(N, 2) float64`` arrays, column 0 = x = image column, column 1 = y = image row,
  in full-resolution pixels, continuous coordinates (pixel ``(r, c)`` covers
  ``[c, c+1) x [r, r+1)``);
* images are ``(H, W, 3) uint8`` RGB arrays (grayscale files are converted);
* a point is *inside* the image when ``0 <= x <= W`` and ``0 <= y <= H``. Points outside are
  dropped from :attr:`Item.points` and kept in :attr:`Item.outside_points` so that readers and
  the inspector can report them; nothing is clipped silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class DatasetError(ValueError):
    """Bad dataset input: missing root, wrong layout, unreadable file, bad annotation.

    The message always names the file, field or value at fault.
    """


def read_image_rgb(path: Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8`` RGB; grayscale and RGBA are converted."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as e:
        raise DatasetError(f"image file not found: {path}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"unreadable image {path}: {e}") from e


def read_image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file from its header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except FileNotFoundError as e:
        raise DatasetError(f"image file not found: {path}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"unreadable image {path}: {e}") from e
    return int(height), int(width)


def as_points(values, source: str) -> np.ndarray:
    """Validate and convert annotation values to ``(N, 2) float64`` points.

    ``source`` names the file/field for the error message. An empty annotation (0 points) is
    valid and gives shape ``(0, 2)``.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{source}: points are not numeric ({e})") from e
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise DatasetError(f"{source}: expected an (N, 2) array of x, y points, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr[:, :2])
    if not np.all(np.isfinite(arr)):
        raise DatasetError(f"{source}: points contain NaN or infinite values")
    return arr


def inside_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean mask of the points with ``0 <= x <= width`` and ``0 <= y <= height``."""
    x, y = points[:, 0], points[:, 1]
    return (x >= 0) & (x <= width) & (y >= 0) & (y <= height)


class Item:
    """One annotated image, loaded lazily.

    Attributes:
        id: stable identifier, unique within the dataset (for example ``"train/IMG_12"``).
        image_path: the image file, or ``None`` for generated images.

    Nothing is read at construction; the image header, pixels and annotation are read on first
    use. Items pickle cleanly (loaders are module-level callables or ``functools.partial``).
    """

    __slots__ = ("id", "image_path", "_load_points", "_load_image", "_size", "_raw_points")

    def __init__(
        self,
        id: str,
        image_path: Path | None,
        load_points: Callable[[], np.ndarray],
        load_image: Callable[[], np.ndarray] | None = None,
        size: tuple[int, int] | None = None,
    ):
        self.id = id
        self.image_path = image_path
        self._load_points = load_points
        self._load_image = load_image
        self._size = size
        self._raw_points: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Item(id={self.id!r}, image_path={str(self.image_path)!r})"

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        if self._size is None:
            if self.image_path is None:
                self._size = tuple(self.load_image().shape[:2])
            else:
                self._size = read_image_size(self.image_path)
        return self._size

    def load_image(self) -> np.ndarray:
        """The image as ``(H, W, 3) uint8`` RGB (a fresh array each call)."""
        if self._load_image is not None:
            img = self._load_image()
        else:
            img = read_image_rgb(self.image_path)
        if self._size is None:
            self._size = tuple(img.shape[:2])
        return img

    @property
    def raw_points(self) -> np.ndarray:
        """All annotated points as stored, ``(N, 2) float64``, including any outside the image."""
        if self._raw_points is None:
            self._raw_points = self._load_points()
        return self._raw_points

    @property
    def points(self) -> np.ndarray:
        """Points inside the image, ``(N, 2) float64`` x=column, y=row, pixels."""
        pts = self.raw_points
        return pts[inside_mask(pts, *self.size)]

    @property
    def outside_points(self) -> np.ndarray:
        """Annotated points that lie outside the image (dropped from :attr:`points`)."""
        pts = self.raw_points
        return pts[~inside_mask(pts, *self.size)]

    @property
    def count(self) -> int:
        """Number of points inside the image: the ground-truth count."""
        return int(len(self.points))


@dataclasses.dataclass
class CountingDataset(Sequence[Item]):
    """One split of one dataset: an ordered, indexable list of :class:`Item`."""

    name: str
    split: str
    root: Path | None
    items: list[Item]
    problems: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    @property
    def ids(self) -> list[str]:
        return [it.id for it in self.items]

    def by_id(self, item_id: str) -> Item:
        """The item with id ``item_id`` (a dict index is built on first use)."""
        index = self.__dict__.get("_index")
        if index is None or len(index) != len(self.items):
            index = self.__dict__["_index"] = {it.id: it for it in self.items}
        try:
            return index[item_id]
        except KeyError:
            raise KeyError(f"{self.name}/{self.split}: no item with id {item_id!r}") from None


def require_dir(path: Path, what: str, expected: str) -> Path:
    """Return ``path`` if it is a directory, else raise naming it and the expected layout."""
    if not path.is_dir():
        raise DatasetError(f"{what}: directory not found: {path}\nexpected layout: {expected}")
    return path
