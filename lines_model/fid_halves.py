"""FID of halves of the generated set against a fixed reference: the FID replicates of `uncertainty`.

A half's FID is |mu_b - mu_r|^2 + tr S_b + tr S_r - 2 tr sqrt(S_b S_r), and
tr sqrt(S_b S_r) = tr sqrt(R S_b R) with R = S_r^(1/2): R S_b R is the covariance over the half
of Y = (g - mean(g)) R, which is computed once. So a replicate costs one symmetric eigenproblem
instead of torch-fidelity's general d x d one (the same value; see the tests), plus its Gram.

The halves are drawn one of two ways:

- points, while a half's Gram costs little, in itself or next to its eigenproblem (h d^2 <=
  GRAM_FLOPS or h <= POINTS_PER_DIM * d: 500 x 128-d or 5,000 x 2,048-d features): each replicate
  is a random half of the points, those of the other metrics' replicates; its Gram costs
  O(h d min(h, d)), about 0.75 h / d of the eigenproblem in float64 on a CPU.
- groups, above that (50,000 x 2,048-d features: a 25,000-point Gram would cost 9 eigenproblems,
  5 s a replicate on 2 CPU cores): the points are dealt once into G random groups of equal size (+-1), each group's Gram
  of Y is computed once in float64 (lower triangles packed, G d(d + 1) / 2 x 8 bytes: 2.1 GB for
  G = 128 at d = 2,048), and a replicate is a random half of the groups, whose covariance is the
  sum of G / 2 of those Grams: exactly the covariance of the union of its points. This is
  half-sampling with the groups as units; its variance estimate rests on G - 1 degrees of freedom
  instead of n - 1, which adds a relative noise of about 1 / sqrt(2 (G - 1)) to the error (6% at
  G = 128) on top of the 1 / sqrt(2 B) of B replicates.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

POINTS_PER_DIM = 2  # halves of points while h <= 2 d ...
GRAM_FLOPS = 2.5e9  # ... or h d^2 <= 2.5e9 (a tenth of a second)
GROUPS = 128  # groups of the grouped halves (at most; fewer where their Grams would pass GROUP_BYTES)
GROUP_BYTES = 2.5e9  # packed float64 Grams of all groups
MIN_GROUP = 16  # points per group at least, else halves of points
CHUNK_BYTES = 2**28  # sums of packed Grams formed at once (replicates x d(d + 1) / 2 x 8 bytes)


def n_groups(n: int, d: int) -> int:
    """Groups of the grouped halves for n points of d dimensions; 0 means halves of points."""
    h = n // 2
    if h <= POINTS_PER_DIM * d or h * d * d <= GRAM_FLOPS:
        return 0
    fit = int(GROUP_BYTES // (d * (d + 1) // 2 * 8))
    groups = min(GROUPS, fit, n // MIN_GROUP) // 2 * 2
    return groups if groups >= 8 else 0


class _Reference:
    """What every replicate shares: the reference's mean, covariance trace and root R, and the
    generated points centred (x) and whitened (y = x R), in float64."""

    def __init__(self, g: torch.Tensor, r: torch.Tensor, device):
        r = r.to(device, torch.float64)
        self.mu_r = r.mean(0)
        cov_r = torch.cov(r.T)
        self.tr_r = cov_r.trace()
        evals, evecs = torch.linalg.eigh(cov_r)
        self.root = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
        self.mu_g = g.to(device, torch.float64).mean(0)
        self.device = device

    def centred(self, g_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = g_rows.to(self.device, torch.float64) - self.mu_g
        return x, x @ self.root

    def fid(self, h, sx, sq, tr_sqrt) -> torch.Tensor:
        """A half's FID from its size h, the sum sx of its centred points and sq of their squared norms."""
        mean_diff = self.mu_g + sx / h - self.mu_r
        return mean_diff.pow(2).sum() + (sq - sx.pow(2).sum() / h) / (h - 1) + self.tr_r - 2 * tr_sqrt


@contextmanager
def _one_thread(device):
    """torch on one CPU thread inside: MKL's threaded symmetric eigensolver stalls as soon as another
    process shares the cores (eigvalsh of 2,048 x 2,048 float64 on this 2-core machine, another job
    running: 1.4 to 4.6 s on 2 threads, a steady 0.54 s on one; about 0.45 s on 2 idle cores)."""
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _tr_sqrt(gram: torch.Tensor) -> torch.Tensor:
    """Sum of the square roots of the eigenvalues of a symmetric PSD matrix (its lower triangle)."""
    with _one_thread(gram.device):
        return torch.linalg.eigvalsh(gram).clamp(min=0).sqrt().sum()


def fid_by_points(g: torch.Tensor, r: torch.Tensor, halves: torch.Tensor, device="cpu") -> np.ndarray:
    """FID against `r` of each subset of `g` (rows of `halves`: indices)."""
    ref = _Reference(g, r, device)
    x, y = ref.centred(g)
    out = np.empty(len(halves))
    for b, idx in enumerate(halves.to(device)):
        xb, yb = x[idx], y[idx]
        h = len(idx)
        yc = yb - yb.mean(0)
        gram = (yc.T @ yc if h >= yc.shape[1] else yc @ yc.T) / (h - 1)
        out[b] = ref.fid(h, xb.sum(0), xb.pow(2).sum(), _tr_sqrt(gram)).item()
    return out


def fid_by_groups(g: torch.Tensor, r: torch.Tensor, groups: list[np.ndarray], chosen: np.ndarray,
                  device="cpu") -> np.ndarray:
    """FID against `r` of the union of the groups of `g` in each row of `chosen` (group numbers);
    `groups` holds the point indices of each group."""
    ref = _Reference(g, r, device)
    G, d = len(groups), g.shape[1]
    lower = torch.tril_indices(d, d, device=device)
    flat = lower[0] * d + lower[1]
    del lower
    grams = torch.empty(G, len(flat), dtype=torch.float64, device=device)
    sx = torch.empty(G, d, dtype=torch.float64, device=device)
    sy = torch.empty(G, d, dtype=torch.float64, device=device)
    sq = torch.empty(G, dtype=torch.float64, device=device)
    for j, idx in enumerate(groups):
        x, y = ref.centred(g[torch.from_numpy(idx)])
        grams[j] = (y.T @ y).view(-1)[flat]
        sx[j], sy[j], sq[j] = x.sum(0), y.sum(0), x.pow(2).sum()
    size = torch.tensor([len(i) for i in groups], dtype=torch.float64, device=device)
    w = torch.zeros(len(chosen), G, dtype=torch.float64, device=device)
    w.scatter_(1, torch.from_numpy(chosen).to(device), 1.0)
    out = np.empty(len(chosen))
    step = max(1, int(CHUNK_BYTES // (len(flat) * 8)))
    gram = torch.zeros(d, d, dtype=torch.float64, device=device)  # its upper triangle is never read
    for c in range(0, len(w), step):
        sums = w[c : c + step] @ grams
        for b in range(len(sums)):
            wb = w[c + b]
            h, syb = wb @ size, wb @ sy
            gram.view(-1)[flat] = sums[b]  # lower triangle: all eigvalsh reads
            gram.sub_(torch.outer(syb, syb) / h).div_(h - 1)
            out[c + b] = ref.fid(h, wb @ sx, wb @ sq, _tr_sqrt(gram)).item()
        del sums
    return out


def fid_replicates(g: torch.Tensor, r: torch.Tensor, halves: torch.Tensor, rng: np.random.Generator,
                   device="cpu") -> tuple[np.ndarray, float]:
    """FID replicates and their variance factor h / (n - h): over `halves` (rows of point indices)
    or, for large sets (`n_groups`), over as many random halves of groups drawn from `rng`."""
    n, d = g.shape
    G = n_groups(n, d)
    if not G:
        h = halves.shape[1]
        return fid_by_points(g, r, halves, device), h / (n - h)
    groups = np.array_split(rng.permutation(n), G)
    chosen = np.sort(rng.random((len(halves), G)).argsort(axis=1)[:, : G // 2], axis=1)
    return fid_by_groups(g, r, groups, chosen, device), (G // 2) / (G - G // 2)

