"""Training losses: small callables holding their hyper-parameters (in the style of EDM's loss.py).

Lines and the naive baseline share everything but the input: Lines regresses C from the point
X_t = t*C + (1-t)*N on the straight line between noise and image, the baseline from N alone
(t = 0). The student is a students.LinesStudent, S(X_t, t) with t in [0, 1].
Progressive distillation lives in methods/pd/target.py: it only swaps the target.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from lines_model.line import point_on_line

Distance = Literal["mse", "l1", "huber"]


def distance(pred: torch.Tensor, target: torch.Tensor, kind: Distance) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "l1":
        return F.l1_loss(pred, target)
    # Pseudo-Huber with c = 0.00054 * sqrt(d), the constant of Song & Dhariwal 2023 (iCT).
    c = 0.00054 * math.sqrt(pred[0].numel())
    return (torch.sqrt((pred - target).pow(2).flatten(1).sum(1) + c * c) - c).mean()


def sample_t(n: int, dist: str, generator: torch.Generator) -> torch.Tensor:
    """t in [0, 1] for the Lines loss."""
    if dist == "uniform":
        return torch.rand(n, generator=generator)
    if dist == "logit_normal":  # puts more weight mid-line, as in SD3's rectified-flow training
        return torch.sigmoid(torch.randn(n, generator=generator))
    if dist == "beta":  # Beta(0.5, 0.5): more weight near t=0 (where sampling starts) and t=1
        u = torch.rand(n, generator=generator)
        return torch.sin(0.5 * math.pi * u).pow(2)
    raise ValueError(f"train_lines.t_dist: unknown distribution {dist!r}")


class LinesLoss:
    """d(S(X_t, t), C) with X_t = t*C + (1-t)*N and t ~ t_dist."""

    def __init__(self, kind: Distance, t_dist: str):
        self.kind, self.t_dist = kind, t_dist

    def __call__(self, student, noise: torch.Tensor, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        t = sample_t(noise.shape[0], self.t_dist, generator).to(noise.device)
        return distance(student(point_on_line(noise, clean, t), t), clean, self.kind)


class BaselineLoss:
    """Naive distillation (Luhman & Luhman 2021): d(S(N, 0), C)."""

    def __init__(self, kind: Distance):
        self.kind = kind

    def __call__(self, student, noise: torch.Tensor, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        t = torch.zeros(noise.shape[0], device=noise.device)
        return distance(student(noise, t), clean, self.kind)
