"""FID of half-samples of both sets: the FID replicates of `uncertainty`.

A replicate is the FID between a half of the generated set and a half of the reference:
|mu_g - mu_r|^2 + tr S_g + tr S_r - 2 tr sqrt(S_g S_r), and tr sqrt(S_g S_r) is the sum of the
square roots of the eigenvalues of the symmetric L^T S_g L for any factor S_r = L L^T (Cholesky;
the symmetric root where a half's S_r is singular). So a replicate costs a Cholesky factor, two
d x d products and one symmetric eigenproblem instead of torch-fidelity's general d x d one (the
same value; see the tests), plus the halves' covariances.

The halves of each set are drawn one of two ways:

- points, while a half's Gram costs little, in itself or next to its eigenproblem (h d^2 <=
  GRAM_FLOPS or h <= POINTS_PER_DIM * d: 500 x 128-d or 5,000 x 2,048-d features): each replicate
  is the half of the points the other metrics' replicate has (`halves`, boolean masks);
- groups, above that (50,000 x 2,048-d features: a 25,000-point Gram would cost as much as 9
  eigenproblems, a replicate): the points are dealt once into G random groups of equal size (+-1),
  each group's Gram is computed once in float64 (lower triangles packed, G d(d + 1) / 2 x 8 bytes:
  2.1 GB for G = 128 at d = 2,048), and a replicate is a half of the groups (`chosen`, boolean
  masks over groups), whose covariance is the sum of G / 2 of those Grams: exactly the covariance
  of the union of its points. This is half-sampling with the groups as units; its variance estimate
  rests on G - 1 degrees of freedom instead of n - 1, which adds a relative noise of about
  1 / sqrt(2 (G - 1)) to the error (6% at G = 128) on top of that of the replicates' number.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

POINTS_PER_DIM = 2  # halves of points while h <= 2 d ...
GRAM_FLOPS = 2.5e9  # ... or h d^2 <= 2.5e9 (a tenth of a second)
GROUPS = 128  # groups of the grouped halves (at most; fewer where their Grams would pass GROUP_BYTES)
GROUP_BYTES = 2.5e9  # packed float64 Grams of all groups of one set
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


@contextmanager
def _one_thread(device):
    """torch on one CPU thread inside: the threaded symmetric eigensolver stalls as soon as another
    process shares the cores, where one thread keeps a steady pace and loses little on idle cores."""
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fid_from_moments(mu_g, cov_g, mu_r, cov_r) -> torch.Tensor:
    """FIDs of pairs of Gaussians (float64 tensors, batches (B, d) and (B, d, d)): torch-fidelity's
    formula, with tr sqrt(S_g S_r) through a factor of S_r."""
    factor, info = torch.linalg.cholesky_ex(cov_r)
    for b in info.nonzero()[:, 0].tolist():  # singular (a half of fewer points than dimensions): the symmetric root
        evals, evecs = torch.linalg.eigh(cov_r[b])
        factor[b] = evecs * evals.clamp(min=0).sqrt()
    tr_sqrt = torch.linalg.eigvalsh(factor.mT @ cov_g @ factor).clamp(min=0).sqrt().sum(-1)
    trace = cov_g.diagonal(dim1=-2, dim2=-1).sum(-1) + cov_r.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (mu_g - mu_r).pow(2).sum(-1) + trace - 2 * tr_sqrt


class _Set:
    """One feature set in float64, centred on its mean; with `groups` (point indices per group) also
    each group's packed Gram, sum and size, from which the moments of a union of groups follow."""

    def __init__(self, f: torch.Tensor, device, groups: list[np.ndarray] | None = None):
        self.x = f.to(device, torch.float64)
        self.mu = self.x.mean(0)
        self.x = self.x - self.mu
        self.groups = groups
        if groups:
            d = f.shape[1]
            lower = torch.tril_indices(d, d, device=device)
            self.flat = lower[0] * d + lower[1]
            self.grams = torch.stack(
                [(y.T @ y).view(-1)[self.flat] for y in (self.x[torch.from_numpy(i)] for i in groups)]
            )
            self.sums = torch.stack([self.x[torch.from_numpy(i)].sum(0) for i in groups])
            self.size = torch.tensor([len(i) for i in groups], dtype=torch.float64, device=device)

    def by_points(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb = self.x[mask.to(self.x.device)]
        mean = xb.mean(0)
        xc = xb - mean
        return self.mu + mean, xc.T @ xc / (len(xb) - 1)

    def by_groups(self, w: torch.Tensor, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Moments of the union of the groups `w` (0/1 weights) whose Grams sum to `packed`."""
        d = self.x.shape[1]
        gram = torch.zeros(d, d, dtype=torch.float64, device=self.x.device)
        gram.view(-1)[self.flat] = packed
        gram = gram + gram.tril(-1).T
        h, s = w @ self.size, w @ self.sums
        return self.mu + s / h, (gram - torch.outer(s, s) / h) / (h - 1)

    def moments(self, masks: torch.Tensor):
        """(mean, covariance) of each row of `masks` (over points, or over groups), in order."""
        if not self.groups:
            for mask in masks:
                yield self.by_points(mask)
            return
        w = masks.to(self.x.device, torch.float64)
        step = max(1, int(CHUNK_BYTES // (self.grams.shape[1] * 8)))
        for c in range(0, len(w), step):
            sums = w[c : c + step] @ self.grams
            for b in range(len(sums)):
                yield self.by_groups(w[c + b], sums[b])


def deal(n: int, d: int, masks: torch.Tensor, rng: np.random.Generator) -> tuple[list[np.ndarray] | None, torch.Tensor]:
    """The units of a set's FID halves: (None, `masks`) for halves of points, or, for large sets
    (`n_groups`), G random groups and halves of them drawn from `rng`, complementary as the rows of
    `masks` are (row 2p + 1 is the complement of row 2p)."""
    G = n_groups(n, d)
    if not G:
        return None, masks
    groups = np.array_split(rng.permutation(n), G)
    first = torch.from_numpy(rng.random((len(masks) // 2, G)).argsort(axis=1)[:, : G // 2])
    half = torch.zeros(len(first), G, dtype=torch.bool).scatter_(1, first, True)
    return groups, torch.stack([half, ~half], 1).reshape(-1, G)


def fid_replicates(
    gens: dict[str, torch.Tensor],
    r: torch.Tensor,
    gen_masks: torch.Tensor,
    ref_masks: torch.Tensor,
    rng: np.random.Generator,
    device="cpu",
) -> dict[str, np.ndarray]:
    """FID of each row's half of every generated set against that row's half of `r`: the generated
    halves (`gen_masks`) and reference halves (`ref_masks`) are the same for every generator."""
    n, d = next(iter(gens.values())).shape
    gen_groups, gen_units = deal(n, d, gen_masks, rng)
    ref_groups, ref_units = deal(len(r), d, ref_masks, rng)
    ref = _Set(r, device, ref_groups)
    batch = max(1, int(CHUNK_BYTES // (4 * d * d * 8)))  # covariance pairs (and their products) at once
    out = {}
    for name, g in gens.items():
        with _one_thread(device):  # the whole loop: switching the thread count is not free
            out[name] = _fids(_Set(g, device, gen_groups), gen_units, ref, ref_units, batch)
    return out


def _fids(gen: _Set, gen_units, ref: _Set, ref_units, batch: int) -> np.ndarray:
    values, moments = [], zip(gen.moments(gen_units), ref.moments(ref_units))
    while chunk := [m for _, m in zip(range(batch), moments)]:
        (mu_g, cov_g), (mu_r, cov_r) = ([torch.stack(t) for t in zip(*side)] for side in zip(*chunk))
        values.append(fid_from_moments(mu_g, cov_g, mu_r, cov_r).cpu())
    return torch.cat(values).numpy()
