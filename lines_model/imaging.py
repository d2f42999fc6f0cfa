"""Image conventions shared by evaluation, figures and benchmarks: [-1, 1] <-> [0, 1], PSNR, and plain
PNG grids of images (no matplotlib, so that training, which writes sample grids, does not depend on
the figures' code)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid

from .atomic import atomic_path

PAD_VALUE = 1.0  # white separators between grid cells: the shapes backgrounds are dark or muted
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


def unit_rgb(x: torch.Tensor) -> torch.Tensor:
    """Images (..., C, H, W), C in {1, 3}, on the CPU as 3 channels in [0, 1] (NaN shown as 0)."""
    x = x.detach().to("cpu", torch.float32)
    x = torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    return x


def save_grid(images, path, nrow: int = 8, scale: int = 4, padding: int = 1) -> None:
    """Write `images` (n, 3, H, W) as a plain PNG grid with `nrow` images per row.

    The grid is `torchvision.utils.make_grid(images, nrow, padding)` (white padding), then the
    whole grid is enlarged `scale` times with nearest-neighbour resampling, so the PNG is
    (ceil(n / c) * (H + padding) + padding) * scale pixels high and (c * (W + padding) + padding)
    * scale wide, where c = min(nrow, n); pixel (y, x) of image i sits at row
    (padding + (i // c) * (H + padding) + y) * scale, column (padding + (i % c) * (W + padding) + x) * scale.
    """
    images = unit_rgb(images)

    if images.shape[0] == 1:  # make_grid returns a single image unpadded; keep the layout uniform
        grid = F.pad(images[0], (padding,) * 4, value=PAD_VALUE)
    else:
        grid = make_grid(images, nrow=nrow, padding=padding, pad_value=PAD_VALUE)
    arr = (grid.permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy()
    img = Image.fromarray(arr, mode="RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), resample=Image.Resampling.NEAREST)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
