"""The fixed subset of pairs the Lines student trains on (subset_50k)."""

from __future__ import annotations

import numpy as np

from lines_model.errors import ConfigError


def select(pairs: int, count: int, seed: int) -> list[int]:
    """`count` distinct indices of range(pairs), sorted; a function of (pairs, count, seed) only."""
    if count > pairs:
        raise ConfigError(f"subset.count: {count} is larger than the {pairs} pairs available (pairs.count)")
    return np.sort(np.random.default_rng([seed, 50_000]).choice(pairs, size=count, replace=False)).tolist()
