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

Even a speedup does not hold when the rounds do not agree about it, or when other processes took
the machine's cores in turns that a handful of rounds cannot balance. `reliability` judges one
function's rounds by three signs, each with its number, and every timing carries that verdict: its
times spread widely within the run (`MAX_SPREAD`), its per-round speedups disagree
(`MAX_SPEEDUP_SPREAD`), or the machine was busy with other processes: the 1-minute load average
around the rounds, less the cores this process kept busy (its CPU time over the wall time), above
`BUSY_CORES_FRACTION` of the cores. docs/timing.md has what these limits rest on.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch


# Past these a timing is flagged. A shared machine's speed drifts by 10-30% within minutes, which the
# interleaving leaves in each function's times but cancels in its speedups: the times' own limit is
# the looser one.
MAX_SPREAD = 0.5  # a function's per-round times: IQR over median
MAX_SPEEDUP_SPREAD = 0.2  # its per-round speedups over the reference: IQR over median
# Other processes' load (the load average less this process's own cores) above this share of the
# cores, and at least half a core: they held cores that the timed code would otherwise have had.
BUSY_CORES_FRACTION = 0.25


@dataclass(frozen=True)
class Load:
    """The machine around a timed region: the 1-minute load average just before and just after it,
    the logical CPUs it counts over, and this process's CPU time (all its threads) and wall time."""

    cores: int
    loadavg_before: float
    loadavg_after: float
    cpu_s: float
    wall_s: float

    @property
    def own_cores(self) -> float:
        """Cores this process kept busy on average over the region."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def others(self) -> float:
        """Cores other processes kept busy: the larger load average less this process's own. The
        1-minute average lags, so the reading before the region counts too."""
        return max(0.0, max(self.loadavg_before, self.loadavg_after) - self.own_cores)


@dataclass(frozen=True)
class Reliability:
    """Whether a timing can be trusted, why not (one short reason per sign), and the numbers judged."""

    reliable: bool
    reasons: tuple[str, ...]
    spread: float  # IQR over median of the per-round times
    speedup_spread: float | None  # IQR over median of the per-round speedups; None without a reference
    others_load: float | None  # cores other processes kept busy; None when not measured
    cores: int | None


@dataclass(frozen=True)
class Timing:
    ms_per_image: float  # median over rounds of (call time / images_per_call)
    ms_per_image_iqr: float  # interquartile range of the same per-round values
    rounds: int
    calls_per_round: int  # back-to-back calls in each sample (min_sample_s)
    # median over rounds of (the reference's ms per image / this one's, in the same round); None without a reference
    speedup: float | None = None
    speedup_iqr: float | None = None  # interquartile range of the same per-round ratios
    reliability: Reliability | None = None


def _iqr_over_median(values) -> tuple[float, float, float]:
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(median), float(q3 - q1), float((q3 - q1) / median) if median > 0 else math.inf


def reliability(ms: Sequence[float], *, reference_ms: Sequence[float] | None = None, load: Load | None = None,
                max_spread: float = MAX_SPREAD, max_speedup_spread: float = MAX_SPEEDUP_SPREAD,
                busy_fraction: float = BUSY_CORES_FRACTION) -> Reliability:
    """The verdict on one function's timing from its per-round times `ms` (in round order), the
    reference's in the same rounds (`reference_ms`) and the machine's `load` over the rounds.

    Flagged when the times spread by more than `max_spread` (IQR over median), when the per-round
    speedups (reference_ms[i] / ms[i]) spread by more than `max_speedup_spread`, or when other
    processes kept more than max(0.5, busy_fraction x cores) cores busy."""
    if len(ms) == 0 or (reference_ms is not None and len(reference_ms) != len(ms)):
        raise ValueError(f"ms: expected one time per round, as many as reference_ms, got {len(ms)}")
    reasons = []
    median, iqr, spread = _iqr_over_median(ms)
    if spread > max_spread:
        reasons.append(f"times spread: IQR {iqr:.3g} ms is {spread:.0%} of the median {median:.3g} ms")
    speedup_spread = None
    if reference_ms is not None:
        ratios = np.asarray(reference_ms, dtype=float) / np.asarray(ms, dtype=float)
        s_median, s_iqr, speedup_spread = _iqr_over_median(ratios)
        if speedup_spread > max_speedup_spread:
            reasons.append(f"rounds disagree: speedup IQR {s_iqr:.3g} is {speedup_spread:.0%} "
                           f"of the median {s_median:.3g}")
    others = cores = None
    if load is not None:
        others, cores = load.others, load.cores
        if others > max(0.5, busy_fraction * cores):
            peak = max(load.loadavg_before, load.loadavg_after)
            reasons.append(f"busy machine: load average {peak:.2f} on {cores} cores, "
                           f"{others:.2f} of it other processes")
    return Reliability(reliable=not reasons, reasons=tuple(reasons), spread=spread, speedup_spread=speedup_spread,
                       others_load=others, cores=cores)


def warning(timings: Mapping[str, Timing]) -> str | None:
    """One line of every flagged timing's reasons: a reason that every timing shares (a busy machine)
    once, the others after the name they concern; None when all of them hold."""
    flagged = {name: t.reliability.reasons for name, t in timings.items()
               if t.reliability and not t.reliability.reliable}
    if not flagged:
        return None
    shared = set.intersection(*(set(r) for r in flagged.values())) if len(flagged) == len(timings) > 1 else set()
    parts = sorted(shared) + [f"{name}: {'; '.join(r for r in reasons if r not in shared)}"
                              for name, reasons in flagged.items() if set(reasons) - shared]
    return f"warning: unreliable timing: {'; '.join(parts)}"


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not every platform has one
        return 0.0


def _cores() -> int:
    return os.cpu_count() or 1  # the load average counts runnable tasks over the whole machine


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
    Timing carries `speedup`, that function's time over this one's, round by round, and its IQR.
    Each also carries `reliability`, from its rounds and the machine's load over all of them.
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
    load_before, cpu0, wall0 = _loadavg(), time.process_time(), time.perf_counter()
    for positions in order:
        for i in positions:
            name = names[i]
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fns[name]()
            sync()
            ms[name].append((time.perf_counter() - t0) * 1000 / (images_per_call * calls[name]))
    load = Load(cores=_cores(), loadavg_before=load_before, loadavg_after=_loadavg(),
                cpu_s=time.process_time() - cpu0, wall_s=time.perf_counter() - wall0)
    out = {}
    for name in names:
        q1, median, q3 = np.percentile(ms[name], [25, 50, 75])
        speedup = speedup_iqr = None
        if reference is not None:
            ratios = np.asarray(ms[reference]) / np.asarray(ms[name])
            r1, speedup, r3 = (float(x) for x in np.percentile(ratios, [25, 50, 75]))
            speedup_iqr = r3 - r1
        verdict = reliability(ms[name], reference_ms=None if reference in (None, name) else ms[reference], load=load)
        out[name] = Timing(ms_per_image=float(median), ms_per_image_iqr=float(q3 - q1), rounds=len(order),
                           calls_per_round=calls[name], speedup=speedup, speedup_iqr=speedup_iqr, reliability=verdict)
    return out
