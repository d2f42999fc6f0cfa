"""Wall-clock time per image of several generators, measured so that a comparison between them holds.

Timing each generator in its own block lets slow drift (clock boost, thermal throttling, another
job on the machine, caches warmed by whatever ran before) land on one of them only.
`time_interleaved` instead calls every function once per round and reports per function the median
over rounds (robust to a few disturbed rounds) and the interquartile range (how much to trust a
difference). The order within a round comes from a seeded, balanced design (`schedule`): over each
block of k rounds (k functions) every function takes every position once, and each follows every
other equally often, so neither a position (first after the previous round, last, ...) nor
the caches another function leaves behind favour one of them. A fast function is called several
times back to back within its turn (`min_sample_s`), so that each of its samples spans long enough
that a scheduler tick or a cache refilled after the previous function's turn is a small part of it.

Interleaving makes the functions of one run comparable, but not two runs: the speed of a shared
machine moves by 10-30% within minutes, and a fixed workload tracks that drift only roughly (its
speed changes by other factors than the generators' do from one CPU to another). What holds across
runs is a function's cost relative to a `reference` timed in the same rounds: `Timing.speedup`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Timing:
    ms_per_image: float  # median over rounds of (call time / images_per_call)
    ms_per_image_iqr: float  # interquartile range of the same per-round values
    rounds: int
    calls_per_round: int  # back-to-back calls in each sample (min_sample_s)
    # median over rounds of (the reference's ms per image / this one's, in the same round); None without a reference
    speedup: float | None = None


def _williams_rows(k: int) -> list[list[int]]:
    """Williams' Latin square of order k: row i is 0, 1, k-1, 2, k-2, ... shifted by i (mod k). Each
    symbol is once in each row and once in each column; for even k, each ordered pair of distinct
    symbols is adjacent in exactly one row (E. J. Williams, Aust. J. Sci. Res. A 2, 1949)."""
    first = [0] + [(j + 1) // 2 if j % 2 else k - j // 2 for j in range(1, k)]
    return [[(s + i) % k for s in first] for i in range(k)]


def schedule(k: int, rounds: int, seed: int = 0) -> list[list[int]]:
    """The order in which `time_interleaved` calls k functions (indices 0..k-1) in each round:
    ceil(rounds / k) blocks of k rounds, each one Williams' square with its symbols assigned to the
    functions at random and its rows in random order, drawn from `seed`. Within a block every
    function takes every position once. For even k every function also directly follows every
    other once per block; for odd k, twice per two blocks (the second block of each pair is the
    first's rows reversed, with the same assignment).
    """
    rng = np.random.default_rng(seed)
    rows = _williams_rows(k)
    out = []
    for b in range(math.ceil(rounds / k)):
        if k % 2 == 0 or b % 2 == 0:
            labels = rng.permutation(k)
        block = rows if k % 2 == 0 or b % 2 == 0 else [row[::-1] for row in rows]
        out += [[int(labels[s]) for s in block[i]] for i in rng.permutation(k)]
    return out


def _default_sync() -> Callable[[], None]:
    # CUDA kernels run asynchronously: without a synchronize the clock would stop at the launch.
    return torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)


def time_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    images_per_call: int,
    rounds: int,
    warmup: int = 2,
    min_sample_s: float = 0.0,
    sync: Callable[[], None] | None = None,
    seed: int = 0,
    reference: str | None = None,
) -> dict[str, Timing]:
    """Time each of `fns` (name -> function of no arguments making `images_per_call` images).

    First `warmup` untimed calls of every function (compilation, allocator and cache warm-up),
    then at least `rounds` rounds, rounded up to a multiple of len(fns), calling each function
    once in the order `schedule(len(fns), rounds, seed)` gives. A function whose last warm-up call
    took less than `min_sample_s` is called ceil(min_sample_s / that time) times in its turn (once
    without warm-up), and its sample is the mean of those calls. `sync` (default:
    torch.cuda.synchronize when CUDA is available, else nothing) runs after every warm-up call and
    after every sample, before the clock is read. With a `reference` (one of the names), each
    Timing carries `speedup`, that function's time over this one's, round by round.
    Returns name -> `Timing`, in the order of `fns`.
    """
    if not isinstance(fns, Mapping) or not fns:
        raise ValueError(f"fns: expected a non-empty mapping of name -> function, got {fns!r}")
    for name, fn in fns.items():
        if not callable(fn):
            raise ValueError(f"fns: {name!r} is not callable: {fn!r}")
    if isinstance(images_per_call, bool) or not isinstance(images_per_call, int) or images_per_call < 1:
        raise ValueError(f"images_per_call: must be a positive integer, got {images_per_call!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds: must be a positive integer, got {rounds!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: must be a non-negative integer, got {warmup!r}")
    if isinstance(min_sample_s, bool) or not isinstance(min_sample_s, (int, float)) or not min_sample_s >= 0:
        raise ValueError(f"min_sample_s: must be a non-negative number of seconds, got {min_sample_s!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    if reference is not None and reference not in fns:
        raise ValueError(f"reference: {reference!r} is not one of {list(fns)}")
    sync = _default_sync() if sync is None else sync

    names = list(fns)
    last = {name: 0.0 for name in names}
    for _ in range(warmup):
        for name in names:
            t0 = time.perf_counter()
            fns[name]()
            sync()
            last[name] = time.perf_counter() - t0
    calls = {name: max(1, math.ceil(min_sample_s / last[name])) if last[name] > 0 else 1 for name in names}
    order = schedule(len(names), rounds, seed)
    ms = {name: [] for name in names}
    for positions in order:
        for i in positions:
            name = names[i]
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fns[name]()
            sync()
            ms[name].append((time.perf_counter() - t0) * 1000 / (images_per_call * calls[name]))
    out = {}
    for name in names:
        q1, median, q3 = np.percentile(ms[name], [25, 50, 75])
        speedup = None if reference is None else float(np.median(np.asarray(ms[reference]) / np.asarray(ms[name])))
        out[name] = Timing(ms_per_image=float(median), ms_per_image_iqr=float(q3 - q1), rounds=len(order),
                           calls_per_round=calls[name], speedup=speedup)
    return out
