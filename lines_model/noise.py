"""Seed-indexed noise: the noise of item i depends only on (seed, stream, i).

Any pair can therefore be regenerated on its own, and N processes that each generate a
different range produce exactly what one process would.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

TRAIN, HELDOUT, EVAL = 0, 1, 2  # noise streams: training pairs, held-out pairs, data-reference evaluation


def item_seed(seed: int, stream: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, np.uint64)[0] >> 1)


def noise_for(indices: Sequence[int], shape: Sequence[int], seed: int, stream: int = TRAIN) -> torch.Tensor:
    """Standard normal float32 noise of `shape` for each index, from a CPU generator."""
    g = torch.Generator(device="cpu")
    out = torch.empty((len(indices), *shape), dtype=torch.float32)
    for k, i in enumerate(indices):
        g.manual_seed(item_seed(seed, stream, int(i)))
        out[k] = torch.randn(tuple(shape), generator=g)
    return out
