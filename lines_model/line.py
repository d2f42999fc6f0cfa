"""The straight line of the Lines Model between noise N and the teacher's image C."""

from __future__ import annotations

import torch


def point_on_line(noise: torch.Tensor, clean: torch.Tensor, t) -> torch.Tensor:
    """X_t = t*C + (1-t)*N; `t` is a number or one value per sample."""
    if torch.is_tensor(t) and t.ndim == 1:
        t = t.view(-1, *([1] * (noise.ndim - 1)))
    return t * clean + (1 - t) * noise
