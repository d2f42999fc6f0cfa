"""Wall-clock time per image of several generators, measured so that a comparison between them holds.

Timing each generator in its own block lets slow drift (clock boost, thermal throttling, another
job on the machine, caches warmed by whatever ran before) land on one of them only.
`time_interleaved` instead calls every function once per round, rotating the order each round so
that each takes every position (first after the previous round, last, ...) equally often, and
reports per function the median over rounds (robust to a few disturbed rounds) and the
interquartile range (how much to trust a difference). A fast function is called several times
back to back within its turn (`min_sample_s`), so that each of its samples spans long enough that
a scheduler tick or a cache refilled after the previous function's turn is a small part of it.

Interleaving makes the generators of one run comparable, but not two runs: on a shared machine the
speed of the whole machine moves by 10-15% within minutes (a fixed workload that runs no project code
shows it). An optional `probe`, a fixed workload timed in the same rounds, turns each sample into a
ratio that this common drift cancels from: `probes_per_image`, the cost of one image in runs of the
probe. `machine_probe` is the one evaluate uses.
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
    # median over rounds of (ms per image / the probe's ms per call in the same round); None without a probe
    probes_per_image: float | None = None
    probe_ms: float | None = None  # the probe's median ms per call over the same rounds; None without a probe


# Size of machine_probe: about 9 ms a run on a 2-core CPU, so min_sample_s repeats it like a fast generator.
PROBE_SHAPE = (8, 64, 32, 32)
PROBE_BLOCKS = 4


def machine_probe(device: torch.device | str = "cpu") -> Callable[[], torch.Tensor]:
    """A fixed workload of the generators' kind (3x3 convolutions, group norm, SiLU at 32x32), with
    seeded weights and input, that never changes with the project's models: its time tracks the
    machine's speed of the moment. Changing its size changes every `probes_per_image`."""
    g = torch.Generator().manual_seed(0)
    c = PROBE_SHAPE[1]
    x = torch.randn(PROBE_SHAPE, generator=g).to(device)
    weights = [(torch.randn(c, c, 3, 3, generator=g) / (3 * c**0.5)).to(device) for _ in range(PROBE_BLOCKS)]

    @torch.no_grad()
    def probe() -> torch.Tensor:
        h = x
        for w in weights:
            h = torch.nn.functional.silu(torch.nn.functional.group_norm(torch.nn.functional.conv2d(h, w, padding=1), 8))
        return h

    return probe


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
    probe: Callable[[], object] | None = None,
) -> dict[str, Timing]:
    """Time each of `fns` (name -> function of no arguments making `images_per_call` images).

    First `warmup` untimed calls of every function (compilation, allocator and cache warm-up),
    then `rounds` rounds calling each function once, in the mapping's order rotated by one more
    place each round. A function whose last warm-up call took less than `min_sample_s` is called
    ceil(min_sample_s / that time) times in its turn (once without warm-up), and its sample is the
    mean of those calls. `sync` (default: torch.cuda.synchronize when CUDA is available, else
    nothing) runs after every warm-up call and after every sample, before the clock is read.
    A `probe` (a function of no arguments) takes its turn in every round like one more function,
    and each Timing then carries `probes_per_image` and `probe_ms`.
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
    if probe is not None and not callable(probe):
        raise ValueError(f"probe: expected a function of no arguments, got {probe!r}")
    sync = _default_sync() if sync is None else sync

    fns = dict(fns)
    names = list(fns)
    probe_key = object()  # cannot collide with a caller's name
    if probe is not None:
        fns[probe_key] = probe
        names.append(probe_key)
    last = {name: 0.0 for name in names}
    for _ in range(warmup):
        for name in names:
            t0 = time.perf_counter()
            fns[name]()
            sync()
            last[name] = time.perf_counter() - t0
    calls = {name: max(1, math.ceil(min_sample_s / last[name])) if last[name] > 0 else 1 for name in names}
    ms = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fns[name]()
            sync()
            ms[name].append((time.perf_counter() - t0) * 1000 / (images_per_call * calls[name]))
    out = {}
    for name in names:
        if name is probe_key:
            continue
        q1, median, q3 = np.percentile(ms[name], [25, 50, 75])
        extra = {}
        if probe is not None:
            # The probe's samples were divided by images_per_call like the others'; undo that to get ms per call.
            probe_call = np.asarray(ms[probe_key]) * images_per_call
            extra = dict(probes_per_image=float(np.median(np.asarray(ms[name]) / probe_call)), probe_ms=float(np.median(probe_call)))
        out[name] = Timing(ms_per_image=float(median), ms_per_image_iqr=float(q3 - q1), rounds=rounds, calls_per_round=calls[name], **extra)
    return out
