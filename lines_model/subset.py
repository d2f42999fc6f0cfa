"""The fixed subset of pairs the Lines student trains on (subset_50k)."""

from __future__ import annotations

import numpy as np

from lines_model.errors import ConfigError


def select(count: int, size: int, seed: int) -> list[int]:
    """`size` distinct indices of range(count), sorted; a function of (count, size, seed) only."""
    if size > count:
        raise ConfigError(f"subset.size: {size} is larger than the {count} pairs available (pairs.count)")
    return np.sort(np.random.default_rng([seed, 50_000]).choice(count, size=size, replace=False)).tolist()
