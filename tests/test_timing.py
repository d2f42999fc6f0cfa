"""lines_model.timing: interleaved timing rounds in a seeded, balanced order."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from lines_model.timing import Timing, schedule, time_interleaved


def _sleeper(ms: float):
    return lambda: time.sleep(ms / 1000)


def test_medians_of_known_sleeps_are_close_and_ordered():
    out = time_interleaved({"fast": _sleeper(2), "slow": _sleeper(6)}, images_per_call=2, rounds=16, warmup=1,
                           sync=lambda: None)
    assert list(out) == ["fast", "slow"]
    fast, slow = out["fast"], out["slow"]
    assert isinstance(fast, Timing) and fast.rounds == 16 and fast.speedup is None  # no reference, no speedup
    # sleep never returns early; the allowance is for wake-up delays on a loaded 2-core machine.
    assert 1.0 <= fast.ms_per_image < 1.0 + 2.0, fast
    assert 3.0 <= slow.ms_per_image < 3.0 + 2.0, slow
    assert slow.ms_per_image - fast.ms_per_image > 1.0  # nominally 2 ms per image apart
    # Constant sleeps: the IQR is wake-up jitter only, within the medians' allowance.
    assert fast.ms_per_image_iqr < 2.0 and slow.ms_per_image_iqr < 2.0, (fast, slow)


def test_the_iqr_is_that_of_the_per_round_times():
    # Round r sleeps 20 (r + 1) ms: per-image times 10, 20, ..., 80 ms (2 images a call), whose quartiles
    # (numpy's linear interpolation) are 27.5 and 62.5 ms, an IQR of 35 ms, and the median 45 ms. The
    # allowance is 5 ms per image (10 ms of wake-up delay a call, as seen under full load on 2 cores).
    sleeps = iter([20] + [20 * (r + 1) for r in range(8)])  # the warm-up call first
    t = time_interleaved({"x": lambda: time.sleep(next(sleeps) / 1000)}, images_per_call=2, rounds=8, warmup=1,
                         sync=lambda: None)["x"]
    assert 45.0 <= t.ms_per_image < 45.0 + 5.0, t
    assert 35.0 - 5.0 < t.ms_per_image_iqr < 35.0 + 5.0, t  # each quartile is late by a wake-up delay at most


def test_warmup_then_rounds_in_the_scheduled_order_with_a_sync_after_each_call():
    log = []
    fns = {name: (lambda name=name: log.append(name)) for name in "abc"}
    out = time_interleaved(fns, images_per_call=1, rounds=4, warmup=1, sync=lambda: log.append("sync"), seed=7)
    # Warm-up in the mapping's order, then 4 rounds rounded up to 6 (a multiple of 3) in the seeded design's order.
    rounds = ["".join("abc"[i] for i in row) for row in schedule(3, 4, seed=7)]
    assert len(rounds) == 6 and "".join(rounds) != "abc" * 6
    calls = "".join(x for x in log if x != "sync")
    assert calls == "abc" + "".join(rounds)
    # A sync after every call, warm-up included (its duration sets the calls per sample), before the clock is read.
    assert log == [x for name in calls for x in (name, "sync")]
    assert all(t.rounds == 6 and t.calls_per_round == 1 for t in out.values())


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7, 8])
def test_every_entry_takes_every_position_once_per_block_and_follows_every_other_equally_often(k):
    order = schedule(k, 3 * k + 1, seed=1)  # rounded up to 4 blocks of k rounds
    assert len(order) == 4 * k and all(sorted(row) == list(range(k)) for row in order)
    blocks = [order[b * k:(b + 1) * k] for b in range(4)]
    for block in blocks:
        assert all(sorted(column) == list(range(k)) for column in zip(*block))  # a Latin square
    # Ordered neighbours (a directly before b within a round): each pair of distinct entries once per
    # block for even k, twice per two blocks for odd k. So no entry always follows the same one.
    for pair in (blocks[:2], blocks[2:]):
        follows = Counter((a, b) for block in pair for row in block for a, b in zip(row, row[1:]))
        assert follows == {(a, b): 2 for a in range(k) for b in range(k) if a != b}
    # Each block is drawn afresh: the blocks are not one square repeated.
    if k > 2:
        assert len({tuple(map(tuple, block)) for block in blocks}) > 1


def test_the_order_is_seeded():
    assert schedule(8, 32, seed=3) == schedule(8, 32, seed=3)
    assert schedule(8, 32, seed=3) != schedule(8, 32, seed=4)

    def calls(seed):
        log = []
        time_interleaved({name: (lambda name=name: log.append(name)) for name in "abcd"}, images_per_call=1, rounds=8,
                         warmup=0, sync=lambda: None, seed=seed)
        return log

    assert calls(0) == calls(0) and calls(0) != calls(1)


def test_a_fast_function_is_called_back_to_back_until_a_sample_spans_min_sample_s():
    counts = {"fast": 0, "slow": 0}

    def fn(name, ms):
        def call():
            counts[name] += 1
            time.sleep(ms / 1000)
        return call

    out = time_interleaved({"fast": fn("fast", 5), "slow": fn("slow", 40)}, images_per_call=1, rounds=3, warmup=1,
                           min_sample_s=0.03, sync=lambda: None)
    # fast: warm-up took >= 5 ms, so at most ceil(30 / 5) = 6 calls per sample (fewer if the machine is slow);
    # slow already spans 40 ms > 30 ms: one call per sample. 3 rounds are rounded up to 4 (2 functions).
    assert 2 <= out["fast"].calls_per_round <= 6 and out["slow"].calls_per_round == 1
    assert counts == {"fast": 1 + 4 * out["fast"].calls_per_round, "slow": 1 + 4}
    assert 5.0 <= out["fast"].ms_per_image < 5.0 + 3.0  # per call, not per sample
    assert 40.0 <= out["slow"].ms_per_image < 40.0 + 10.0


def test_single_round_has_zero_iqr():
    out = time_interleaved({"x": _sleeper(6)}, images_per_call=3, rounds=1, warmup=0, sync=lambda: None)
    assert out["x"].ms_per_image_iqr == 0.0 and 2.0 <= out["x"].ms_per_image < 2.0 + 2.0, out["x"]


def test_the_speedup_over_the_reference_cancels_a_slowdown_of_the_whole_machine():
    # The machine runs 3x slower from the fourth round on: every call in a round sleeps `factor` times
    # its nominal time (10 ms for the generator, 40 ms for the reference), as a busy host would do to both.
    # Sleeps this long keep a wake-up delay (well under 1 ms) a small part of each ratio.
    calls = []

    def sleeper(ms):
        def call():
            factor = 1 if len(calls) // 2 < 4 else 3  # two calls per round (warm-up = round 0)
            calls.append(ms)
            time.sleep(factor * ms / 1000)
        return call

    out = time_interleaved({"ref": sleeper(40), "gen": sleeper(10)}, images_per_call=2, rounds=8, warmup=1,
                           sync=lambda: None, reference="ref")
    assert len(calls) == 2 * (1 + 8)
    t = out["gen"]
    # 3 fast rounds and 5 slow ones: the median is a slow round's 15 ms per image, the fast ones 5 ms.
    assert 15.0 <= t.ms_per_image < 15.0 + 3.0 and t.ms_per_image_iqr > 5.0
    # Each round's ratio is 40 / 10 = 4 whatever the machine's speed; the reference's own is 1.
    assert t.speedup == pytest.approx(4.0, rel=0.1) and out["ref"].speedup == 1.0


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        (dict(fns={}), "fns"),
        (dict(fns={"x": 3}), "fns"),
        (dict(images_per_call=0), "images_per_call"),
        (dict(images_per_call=1.5), "images_per_call"),
        (dict(rounds=0), "rounds"),
        (dict(warmup=-1), "warmup"),
        (dict(min_sample_s=-0.1), "min_sample_s"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(reference="y"), "reference"),
    ],
)
def test_bad_arguments_are_named(kwargs, arg):
    args = dict(fns={"x": lambda: None}, images_per_call=1, rounds=2, sync=lambda: None) | kwargs
    with pytest.raises(ValueError, match=arg):
        time_interleaved(**args)
