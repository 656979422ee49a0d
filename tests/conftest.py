"""Shared test fixtures: the real-data root and small image/annotation writers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA_ENV = "COUNTING_DATA_ROOT"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real-data root (``$COUNTING_DATA_ROOT``); the test is skipped when it is unset."""
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(f"{DATA_ENV} is not set: real-data test skipped (point it at the folder holding "
                    "ShanghaiTech/, UCF_CC_50/ and VGG_cells/)")
    root = Path(value)
    if not root.is_dir():
        pytest.fail(f"{DATA_ENV}={value} is set but is not a directory")
    return root


def real_dataset_dir(data_root: Path, relative: str) -> Path:
    """``data_root / relative``, skipping the test when that dataset is not present."""
    path = data_root / relative
    if not path.is_dir():
        pytest.skip(f"{path} not present under {DATA_ENV}")
    return path


def write_image(path: Path, height: int = 48, width: int = 64, seed: int = 0, gray: bool = False) -> Path:
    """A small random image file (format from the suffix)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(height, width) if gray else (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_dots(path: Path, height: int, width: int, pixels: list[tuple[int, int]]) -> Path:
    """A dot image: black RGB PNG with a pure red pixel at each ``(row, col)``."""
    from PIL import Image

    arr = np.zeros((height, width, 3), dtype=np.uint8)
    for r, c in pixels:
        arr[r, c] = (255, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session, bound to 127.0.0.1, in a private temp dir."""
    import shutil
    import tempfile

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # bind to loopback (ENVIRONMENT.md)
    os.environ["RAY_AUTH_MODE"] = "disabled"  # no token file that breaks a later `ray start`
    import ray

    temp_dir = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def one_torch_thread():
    """The Sinkhorn loops run thousands of small ops; on the shared 2-core test machine a second
    torch thread waiting for a busy core made them up to 100x slower. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run_report(*argv: str) -> tuple[int, str, str]:
    """``python -m orchestrator.report ARGV`` in process: (exit code, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from orchestrator import report

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = report.main(list(argv))
    return code, out.getvalue(), err.getvalue()
