"""Blocked distance passes behind the half-sample errors of KID, precision and recall.

A replicate recomputes a metric on a half of the generated set `g` (n points) against a half of
the reference `r` (m points); the halves are the rows of (B, n) and (B, m) boolean masks `H` and
`K`. Everything the replicates of KID, precision and recall need is reduced from row blocks of the
n x n, n x m and m x m distance matrices as each block is made, so no such matrix is ever held
whole: at n = m = 50,000 a block is 10,000 x 50,000 float32 (2 GB).

Distances are torch-fidelity's own: those of its `calc_cdist_part` (torch.cdist) on row blocks of
`ROWS` against column batches of `ROWS`, torch-fidelity's `prc_batch_size`, i.e. the very calls of
`prc_features_to_metric(save_cpu_ram=True)`. Its k-NN radii, precision and recall therefore come
out bit for bit (`within(...).full`, `precision`, `recall`), and each replicate
computes its metric from the distances torch-fidelity computes for the full set.

KID's cubic polynomial kernel (x.y / d + 1)^3 is read off the same blocks, with
x.y = (|x|^2 + |y|^2 - |x - y|^2) / 2: one matrix product per pair of points serves both.
In float32 the kernel so obtained is within ~1e-7 of the float64 one per element; the sums over
halves are accumulated in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_fidelity.defaults import DEFAULTS

ROWS = DEFAULTS["prc_batch_size"]  # 10,000: torch-fidelity's blocks, so its distances
SUB = 512  # rows of a block reduced at once: kernels and comparisons of 512 x 50,000 (100 MB)
CANDIDATES = 1 << 20  # (point, reference) pairs whose replicates are checked at once
RADII_ELEMENTS = 1 << 24  # (half, row, neighbour) flags examined at once for the in-half radii


def neighbour_list_length(k: int, n: int) -> int:
    """How many nearest neighbours (self included) each generated point keeps for its in-half radii."""
    return min(n, max(64, 8 * k))


def _distances(rows: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """`calc_cdist_part(rows, y, ROWS)`: the same torch.cdist calls, written into one block instead
    of concatenated (2 GB at 10,000 x 50,000 rather than 4 GB while torch-fidelity concatenates)."""
    out = torch.empty(len(rows), len(y), dtype=rows.dtype)
    for c, cols in zip(range(0, len(y), ROWS), y.split(ROWS)):
        out[:, c : c + len(cols)] = torch.cdist(rows, cols)
    return out


def _blocks(x: torch.Tensor, y: torch.Tensor):
    """(first row, distances from x[first row : + ROWS] to all of y) per row block of x."""
    for s, block in zip(range(0, len(x), ROWS), x.split(ROWS)):
        yield s, _distances(block, y)


def _kernel(dist: torch.Tensor, sq_rows: torch.Tensor, sq_cols: torch.Tensor, d: int) -> torch.Tensor:
    """torch-fidelity's KID kernel (x.y / d + 1)^3 (gamma 1/d, coef0 1, degree 3) from distances
    between points of squared norms `sq_rows` and `sq_cols`."""
    k = dist.square()
    return k.neg_().add_(sq_rows[:, None]).add_(sq_cols[None, :]).mul_(0.5 / d).add_(1).pow_(3)


def _sq_norms(x: torch.Tensor) -> torch.Tensor:
    return x.double().pow(2).sum(1).to(x.dtype)


def _half_radii(dist, vals, idx, H, in_half, k: int) -> torch.Tensor:
    """For rows j of `dist` and halves b holding row j's point (`in_half[b, j]`): the (k + 1)-th
    smallest of dist[j, H[b]] (self included), read from the rows' nearest-neighbour lists
    `vals`/`idx` (ascending); undefined where the point is not in the half. Where a list holds
    fewer than k + 1 points of the half (for L = 64, k = 3 a chance of about 2^-57), it comes
    from the whole row instead."""
    B, L = len(H), idx.shape[1]
    out = torch.empty(B, len(idx), dtype=vals.dtype)
    step = max(1, RADII_ELEMENTS // (B * L))
    for t in range(0, len(idx), step):
        inh = H[:, idx[t : t + step]]  # (B, rows, L): is the l-th neighbour in half b
        count = inh.cumsum(2, dtype=torch.int32)
        pos = ((count == k + 1) & inh).to(torch.uint8).argmax(2)  # the (k + 1)-th in-half neighbour
        out[:, t : t + step] = vals[t : t + step].expand(B, -1, -1).gather(2, pos[..., None])[..., 0]
        short = (count[..., -1] < k + 1) & in_half[:, t : t + step]
        for b, j in short.nonzero().tolist():
            out[b, t + j] = dist[t + j][H[b]].kthvalue(k + 1).values
    return out


@dataclass
class Within:
    radius: torch.Tensor  # (B, n): in-half radius of each point of each half, -inf outside it
    full: torch.Tensor  # (n,): radius within the whole set (torch-fidelity's)
    quad: torch.Tensor  # (B,) float64: sum of the kernel over ordered pairs of a half, i != j
    n_pairs: torch.Tensor  # (B,) float64: h (h - 1)


def within(g: torch.Tensor, H: torch.Tensor, k: int) -> Within:
    """One pass over d(g, g) of one set `g` (generated or reference): every half's k-NN radii and
    KID's within-half kernel sum."""
    B, n = H.shape
    L = neighbour_list_length(k, n)
    Hf = H.to(g.dtype)
    sq = _sq_norms(g)
    radius = torch.empty(B, n, dtype=g.dtype)
    full = torch.empty(n, dtype=g.dtype)
    quad = torch.zeros(B, dtype=torch.float64)
    for s, dist in _blocks(g, g):
        vals, idx = dist.topk(L, dim=1, largest=False)  # ascending
        full[s : s + len(dist)] = vals[:, k]
        radius[:, s : s + len(dist)] = _half_radii(dist, vals, idx, H, H[:, s : s + len(dist)], k)
        for t in range(0, len(dist), SUB):
            rows = slice(s + t, s + t + len(dist[t : t + SUB]))
            kern = _kernel(dist[t : t + SUB], sq[rows], sq, g.shape[1])
            kern.diagonal(offset=rows.start).zero_()  # i == j is left out (unbiased MMD)
            quad += ((Hf[:, rows] @ kern) * Hf).sum(1, dtype=torch.float64)
    radius.masked_fill_(~H, float("-inf"))
    h = H.sum(1).double()
    return Within(radius, full, quad, h * (h - 1))


@dataclass
class GenRef:
    inside: torch.Tensor  # (n,) bool: within some ball of the whole reference (precision's indicator)
    cross: torch.Tensor  # (B,) float64: sum of the kernel over the pairs (generated half, reference half)
    precise: torch.Tensor  # (B,) int64: points of the generated half inside some ball of the reference half
    covered: torch.Tensor  # (B,) int64: points of the reference half inside some ball of the generated half


def gen_ref(g: torch.Tensor, r: torch.Tensor, H: torch.Tensor, K: torch.Tensor, gen: Within, ref: Within) -> GenRef:
    """One pass over d(g, r): precision's indicators, and every pair of halves' KID cross sum,
    precision count and recall count.

    A reference point j is covered by half b if d(g_i, r_j) <= gen.radius[b, i] for some i in b,
    and a generated point i is inside half b's reference balls if d(g_i, r_j) <= ref.radius[b, j]
    for some j in b. Only the pairs within the largest radius either point has in any half can
    count; they are few, and each is checked against every half.
    """
    B, n = H.shape
    sq_g, sq_r = _sq_norms(g), _sq_norms(r)
    g_max, r_max = gen.radius.max(0).values, ref.radius.max(0).values
    Hf, Kf = H.to(g.dtype), K.to(g.dtype)
    inside = torch.empty(n, dtype=torch.bool)
    cross = torch.zeros(B, dtype=torch.float64)
    covered = torch.zeros(B, len(r), dtype=torch.int32)
    precise = torch.zeros(B, n, dtype=torch.int32)
    for s, dist in _blocks(g, r):
        inside[s : s + len(dist)] = (dist <= ref.full).any(dim=1)
        for t in range(0, len(dist), SUB):
            part = dist[t : t + SUB]
            rows = slice(s + t, s + t + len(part))
            kern = _kernel(part, sq_g[rows], sq_r, g.shape[1])
            cross += ((Hf[:, rows] @ kern) * Kf).sum(1, dtype=torch.float64)
            i, j = ((part <= g_max[rows, None]) | (part <= r_max[None, :])).nonzero(as_tuple=True)
            for c in range(0, len(i), CANDIDATES):
                ic, jc = i[c : c + CANDIDATES] + rows.start, j[c : c + CANDIDATES]
                both, dc = H[:, ic] & K[:, jc], dist[ic - s, jc]  # (B, pairs)
                covered.index_add_(1, jc, (both & (dc <= gen.radius[:, ic])).to(torch.int32))
                precise.index_add_(1, ic, (both & (dc <= ref.radius[:, jc])).to(torch.int32))
    return GenRef(inside, cross, (precise > 0).sum(1), (covered > 0).sum(1))


def recall(r: torch.Tensor, g: torch.Tensor, full: torch.Tensor) -> float:
    """torch-fidelity's recall given the generated radii `full` (`Within.full`), bit for bit: its
    pass over d(r, g), reference rows first. (d(r, g) equals the transpose of `gen_ref`'s d(g, r)
    only up to rounding, which could flip a point lying on a ball's edge.)"""
    hit = torch.cat([(dist <= full).any(dim=1) for _, dist in _blocks(r, g)])
    return hit.float().mean().item()


def precision(inside: torch.Tensor) -> float:
    """torch-fidelity's precision from `GenRef.inside` (its float32 mean)."""
    return inside.float().mean().item()
