"""Every file the orchestrator writes goes through :func:`write_atomic`: written under a
temporary name in the same folder, then renamed, so a reader (or a resumed trial) never sees
half a file, and a failed write leaves nothing behind."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path`` (same suffix, so writers that
    infer the format from it work), then rename it to ``path``. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path: str | Path, data, indent: int = 1) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=indent, default=str))


def save_torch_atomic(obj, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_parquet_atomic(frame, path: str | Path) -> Path:
    """A pandas DataFrame to Parquet (no index) atomically."""
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def save_npz_atomic(path: str | Path, **arrays) -> Path:
    """``numpy.savez_compressed`` atomically (``path`` should end in ``.npz``)."""
    import numpy as np

    return write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays))
