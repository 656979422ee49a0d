"""Seeds derived from ``(seed, purpose, ...)``: one independent stream per use of randomness,
and nothing carried across cycles, so resumed trials draw exactly what uninterrupted ones do."""

from __future__ import annotations

import numpy as np


def derived_seed(seed: int, *purpose: int) -> int:
    """A 32-bit seed for one use of randomness, e.g. ``derived_seed(seed, cycle, PURPOSE_TRAIN)``."""
    return int(np.random.SeedSequence([seed, *purpose]).generate_state(1)[0])
