"""Optimisation helpers shared by every trainer: the learning-rate schedule and the EMA weights.

The students' training (lines_model.training) and the offline trainers of the shipped teacher and
feature net (tools/) use the same two pieces; they live here once so a change reaches all of them.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from diffusers.training_utils import EMAModel


def warmup_cosine(warmup: int, total: int, *, floor: float = 0.0) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at `step`, for torch.optim.lr_scheduler.LambdaLR.

    Linear warmup (step + 1) / warmup over the first `warmup` steps, then half a cosine from 1 down
    to `floor` over the remaining `total - warmup` steps, held at `floor` after `total`. The default
    floor 0 is the students' schedule; the shipped teacher was trained with floor 0.1.
    """

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        p = min(1.0, (step - warmup) / max(1, total - warmup))
        # With floor 0 this is exactly 0.5 * (1 + cos): adding 0.0 and scaling by 1.0 round to the
        # same float, so the students' learning rates (and trained weights) do not move.
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))

    return f


def ema_copy(model: torch.nn.Module, ema: EMAModel) -> torch.nn.Module:
    """A copy of `model` holding the EMA weights, in eval mode; `model` itself is left as it is."""
    m = copy.deepcopy(model)
    ema.copy_to(m.parameters())
    return m.eval()
