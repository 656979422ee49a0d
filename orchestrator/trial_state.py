"""What every trial runner shares: seeds derived from (seed, purpose...), atomic checkpoint
writes, and the injected failure the resume tests use."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


class InjectedFailure(RuntimeError):
    """Raised on purpose after a checkpoint was written (tests of resume)."""


def derived_seed(seed: int, *purpose: int) -> int:
    """A 32-bit seed for one use of randomness, e.g. ``derived_seed(seed, cycle, PURPOSE_TRAIN)``:
    independent streams per (cycle, purpose), and nothing carried across cycles."""
    return int(np.random.SeedSequence([seed, *purpose]).generate_state(1)[0])


def save_checkpoint_atomic(obj, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
