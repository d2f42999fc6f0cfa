"""Image conventions shared by evaluation, figures and benchmarks: [-1, 1] <-> [0, 1], and PSNR."""

from __future__ import annotations

import math

import torch

PSNR_CAP_DB = 100.0  # identical images (mse 0) are reported as 100 dB, keeping every value finite


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (the models' range) -> [0, 1] (metrics and figures), clamped."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def psnr(mse: float) -> float:
    """PSNR (dB) of a mean squared error between images in [0, 1]."""
    return PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else -10 * math.log10(mse)


def per_sample_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of each image pair, images in [0, 1]."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp(min=10 ** (-PSNR_CAP_DB / 10))
    return -10 * torch.log10(mse)
