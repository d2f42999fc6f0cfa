"""The "shapes" data set: a coloured shape on a plain background, 3x16x16, procedurally generated.

Every image is a pure function of (seed, index), so the data set needs no download, has no
size limit and any item can be regenerated exactly. Each image comes with the labels of the
factors that made it; the feature network used for FID on this data set is trained on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SHAPES = ("circle", "square", "triangle", "cross")
# Saturated foreground colours and muted backgrounds, chosen so every pair contrasts.
FOREGROUNDS = np.array(
    [
        [0.90, 0.15, 0.15],  # red
        [0.15, 0.75, 0.20],  # green
        [0.20, 0.35, 0.95],  # blue
        [0.95, 0.85, 0.15],  # yellow
        [0.85, 0.25, 0.85],  # magenta
        [0.15, 0.85, 0.85],  # cyan
    ],
    dtype=np.float32,
)
BACKGROUNDS = np.array(
    [
        [0.08, 0.08, 0.10],  # near black
        [0.35, 0.35, 0.38],  # grey
        [0.93, 0.92, 0.88],  # off white
    ],
    dtype=np.float32,
)
SIZE = 16


@dataclass(frozen=True)
class Factors:
    """Labels of a batch of images (one entry per image)."""

    shape: torch.Tensor  # int64 index into SHAPES
    foreground: torch.Tensor  # int64 index into FOREGROUNDS
    background: torch.Tensor  # int64 index into BACKGROUNDS
    radius: torch.Tensor  # float32, pixels
    center: torch.Tensor  # float32 (n, 2), pixels (x, y)


def sample_factors(indices: np.ndarray | list[int], seed: int = 0) -> Factors:
    """Draw the factors of each image from a generator seeded by (seed, index)."""
    rows = []
    for i in np.asarray(indices, dtype=np.int64):
        rng = np.random.default_rng([seed, int(i)])
        shape = rng.integers(len(SHAPES))
        fg = rng.integers(len(FOREGROUNDS))
        bg = rng.integers(len(BACKGROUNDS))
        radius = rng.uniform(3.5, 6.0)
        # Keep the whole shape inside the frame with a one-pixel margin.
        lo, hi = radius + 1.0, SIZE - radius - 1.0
        center = rng.uniform(lo, hi, size=2)
        rows.append((shape, fg, bg, radius, center[0], center[1]))
    a = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return Factors(
        shape=torch.from_numpy(a[:, 0].astype(np.int64)),
        foreground=torch.from_numpy(a[:, 1].astype(np.int64)),
        background=torch.from_numpy(a[:, 2].astype(np.int64)),
        radius=torch.from_numpy(a[:, 3].astype(np.float32)),
        center=torch.from_numpy(a[:, 4:6].astype(np.float32)),
    )


def _signed_distance(shape: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance (pixels, negative inside) of each pixel to each image's shape."""
    circle = np.hypot(dx, dy) - r
    square = np.maximum(np.abs(dx), np.abs(dy)) - 0.8 * r
    # Upward triangle as the intersection of three half-planes (edge normals at 90, 210, 330 deg).
    s3 = np.sqrt(3.0) / 2.0
    tri = np.maximum.reduce([dy - 0.5 * r, -s3 * dx - 0.5 * dy - 0.5 * r, s3 * dx - 0.5 * dy - 0.5 * r])
    arm = 0.35 * r
    cross = np.minimum(
        np.maximum(np.abs(dx) - r, np.abs(dy) - arm),
        np.maximum(np.abs(dx) - arm, np.abs(dy) - r),
    )
    return np.select([shape == 0, shape == 1, shape == 2], [circle, square, tri], cross)


def render(factors: Factors) -> torch.Tensor:
    """Render images in [0, 1], shape (n, 3, 16, 16), anti-aliased over one pixel."""
    n = factors.shape.shape[0]
    ys, xs = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5, indexing="ij")
    cx = factors.center[:, 0].numpy()[:, None, None]
    cy = factors.center[:, 1].numpy()[:, None, None]
    r = factors.radius.numpy()[:, None, None]
    dx, dy = xs[None] - cx, ys[None] - cy
    d = _signed_distance(factors.shape.numpy()[:, None, None], dx, dy, r)
    coverage = np.clip(0.5 - d, 0.0, 1.0).astype(np.float32)[:, None]  # (n, 1, H, W)
    fg = FOREGROUNDS[factors.foreground.numpy()][:, :, None, None]
    bg = BACKGROUNDS[factors.background.numpy()][:, :, None, None]
    img = bg * (1.0 - coverage) + fg * coverage
    assert img.shape == (n, 3, SIZE, SIZE)
    return torch.from_numpy(np.ascontiguousarray(img))


def images(indices: np.ndarray | list[int], seed: int = 0) -> tuple[torch.Tensor, Factors]:
    """Images in [0, 1] and their factors for the given indices."""
    f = sample_factors(indices, seed)
    return render(f), f
