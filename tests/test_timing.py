"""lines_model.timing: interleaved timing rounds in a seeded, balanced order."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from lines_model import timing
from lines_model.timing import Load, Timing, reliability, schedule, time_interleaved, warning


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


# --- Reliability: judged on constructed per-round times and loads, never on the clock. ---

IDLE = Load(cores=2, loadavg_before=1.9, loadavg_after=2.0, cpu_s=19.0, wall_s=10.0)  # the load is this process's own


def test_steady_rounds_on_an_idle_machine_hold():
    ms = [10.0, 10.3, 9.8, 10.1, 10.0, 9.9, 10.2, 10.0]
    r = reliability(ms, reference_ms=[4 * x for x in ms], load=IDLE)
    assert r.reliable and r.reasons == ()
    assert r.spread < 0.05 and r.speedup_spread == 0.0
    assert r.others_load == pytest.approx(0.1) and r.cores == 2


def test_times_that_spread_are_flagged_even_when_their_speedups_agree():
    # The issue of a loaded machine: the teacher's IQR 453 ms against a 525 ms median.
    ms = [300.0, 350.0, 500.0, 525.0, 525.0, 800.0, 850.0, 900.0]
    q1, q3 = np.percentile(ms, [25, 75])
    r = reliability(ms, reference_ms=[20 * x for x in ms])
    assert not r.reliable and r.spread == pytest.approx((q3 - q1) / 525.0) and r.speedup_spread == 0.0
    assert len(r.reasons) == 1 and r.reasons[0].startswith("times spread:")
    assert r.others_load is None  # no load given: not judged


def test_rounds_that_disagree_about_the_speedup_are_flagged():
    # The generator's times hold still while the reference's swing: per-round speedups 2, 4, 2, 4, ...
    ms = [10.0] * 8
    ref = [20.0, 40.0] * 4
    r = reliability(ms, reference_ms=ref, load=IDLE)
    assert not r.reliable and r.spread == 0.0 and r.speedup_spread == pytest.approx(2.0 / 3.0)
    assert [x.split(":")[0] for x in r.reasons] == ["rounds disagree"]
    # A spread within the limit passes, one past it does not.
    assert reliability(ms, reference_ms=[40.0, 44.0] * 4, max_speedup_spread=0.2).reliable
    assert not reliability(ms, reference_ms=[40.0, 44.0] * 4, max_speedup_spread=0.05).reliable


@pytest.mark.parametrize("cores, load, cpu_s, busy", [
    (2, 2.0, 19.0, False),  # the load is this process's own 1.9 cores
    (2, 0.3, 0.0, False),   # a process that waits (a GPU, a sleep): 0.3 cores of others
    (2, 3.5, 13.0, True),   # a hog beside 2 threads: this process got 1.3 cores, others 2.2
    (2, 1.2, 5.0, True),    # one thread's worth of load beside a single-threaded timing
    (16, 4.0, 10.0, False),  # 3 cores of others on 16: below a quarter of them
    (16, 6.0, 10.0, True),   # 5 of 16
])
def test_a_machine_busy_with_other_processes_is_flagged(cores, load, cpu_s, busy):
    m = Load(cores=cores, loadavg_before=load, loadavg_after=load - 0.1, cpu_s=cpu_s, wall_s=10.0)
    assert m.others == pytest.approx(max(0.0, load - cpu_s / 10.0))
    r = reliability([10.0] * 4, load=m)
    assert r.reliable is not busy
    assert [x.split(":")[0] for x in r.reasons] == (["busy machine"] if busy else [])


def test_the_load_before_the_rounds_counts_too():
    # A job that ended during the rounds has left the 1-minute average by the end, not at the start.
    m = Load(cores=2, loadavg_before=3.0, loadavg_after=1.0, cpu_s=10.0, wall_s=10.0)
    assert m.others == pytest.approx(2.0) and not reliability([1.0], load=m).reliable


def test_reliability_needs_one_time_per_round():
    with pytest.raises(ValueError, match="ms"):
        reliability([])
    with pytest.raises(ValueError, match="reference_ms"):
        reliability([1.0, 2.0], reference_ms=[1.0])


class FakeClock:
    """Wall clock and process CPU clock that move only when a fake function says so."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def perf_counter(self):
        return self.wall

    def process_time(self):
        return self.cpu

    def spend(self, ms: float, cpu_share: float):
        self.wall += ms / 1000
        self.cpu += cpu_share * ms / 1000


def _fake_machine(monkeypatch, loads, cores=2):
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", clock)
    readings = iter(loads)
    monkeypatch.setattr(timing, "_loadavg", lambda: next(readings))
    monkeypatch.setattr(timing, "_cores", lambda: cores)
    return clock


def test_time_interleaved_flags_the_rounds_where_another_process_took_the_cores(monkeypatch):
    # The reference takes 40 ms and the generator 10 ms a call, each on one full core, until a hog
    # starts halfway: from then on the generator's calls take 25 ms (it gets 40% of a core) while the
    # reference's, already under way, do not slow down. Half the rounds then say 4x, half 1.6x.
    clock = _fake_machine(monkeypatch, loads=[0.9, 2.1])
    calls = {"ref": 0, "gen": 0}

    def fn(name, ms):
        def call():
            calls[name] += 1
            hog = calls[name] > 1 + 4  # after the warm-up call and 4 of the 8 rounds
            slow = name == "gen" and hog
            clock.spend(25.0 if slow else ms, 0.4 if slow else 1.0)
        return call

    out = time_interleaved({"ref": fn("ref", 40.0), "gen": fn("gen", 10.0)}, images_per_call=1, rounds=8, warmup=1,
                           sync=lambda: None, reference="ref")
    gen, ref = out["gen"], out["ref"]
    assert gen.speedup == pytest.approx((4.0 + 1.6) / 2) and gen.speedup_iqr == pytest.approx(4.0 - 1.6)
    assert ref.speedup == 1.0 and ref.speedup_iqr == 0.0
    assert [x.split(":")[0] for x in ref.reliability.reasons] == ["busy machine"]  # its own rounds agree
    r = gen.reliability
    assert not r.reliable and r.speedup_spread == pytest.approx(2.4 / 2.8)
    # Wall time 8 x 40 + 4 x 10 + 4 x 25 = 460 ms, CPU time 320 + 40 + 40 = 400 ms: 0.87 cores own.
    assert r.others_load == pytest.approx(2.1 - 400 / 460) and r.cores == 2
    assert {x.split(":")[0] for x in r.reasons} == {"times spread", "rounds disagree", "busy machine"}
    line = warning(out)
    assert line.startswith("warning: unreliable timing: busy machine:") and "\n" not in line
    assert line.count("busy machine") == 1 and "; gen: times spread" in line and "rounds disagree" in line
    assert "ref:" not in line  # the busy machine is all that concerns the reference


def test_time_interleaved_on_a_quiet_machine_flags_nothing(monkeypatch):
    clock = _fake_machine(monkeypatch, loads=[1.0, 1.0])
    a, b = iter([40.0] + [40.0, 41.0] * 4), iter([10.0] + [10.5, 10.0] * 4)  # warm-up, then 8 rounds of small jitter
    out = time_interleaved({"a": lambda: clock.spend(next(a), 1.0), "b": lambda: clock.spend(next(b), 1.0)},
                           images_per_call=1, rounds=8, warmup=1, sync=lambda: None, reference="a")
    assert all(t.reliability.reliable for t in out.values()) and warning(out) is None
    assert out["b"].reliability.others_load == pytest.approx(0.0)


def test_the_evaluation_records_the_verdict_as_numbers():
    from lines_model.evaluation import METRIC_KEYS, timing_metrics
    from lines_model.results import row

    held = reliability([10.0] * 4, reference_ms=[40.0] * 4)
    flagged = reliability([10.0] * 4, reference_ms=[20.0, 40.0] * 2)
    for verdict, value in ((held, 1), (flagged, 0)):
        t = Timing(ms_per_image=10.0, ms_per_image_iqr=0.5, rounds=4, calls_per_round=1, speedup=4.0, speedup_iqr=0.2,
                   reliability=verdict)
        m = timing_metrics(t)
        assert m == {"ms_per_image": 10.0, "ms_per_image_iqr": 0.5, "speedup": 4.0, "speedup_iqr": 0.2,
                     "timing_reliable": value}
        assert set(m) <= set(METRIC_KEYS)
        metrics = {"nfe": 1, "fid": 1.0, "fid_se": 0.1, "kid": 0.0, "kid_se": 0.0, "precision": 1.0,
                   "precision_se": 0.0, "recall": 1.0, "recall_se": 0.0, "mse": 0.0, "mse_se": 0.0, "psnr": 30.0, **m}
        assert row("x", metrics)[-1] == ("4.0" if value else "4.0 (unreliable)")


def test_the_evaluation_flags_a_busy_machine_in_its_metrics_and_says_why_in_one_line(monkeypatch, capsys):
    import torch

    from lines_model.evaluation import time_generators
    from lines_model.generators import Generator

    clock = _fake_machine(monkeypatch, loads=[3.6, 3.9])  # a hog and more beside a process that keeps 1 core busy

    def gen(name, ms):
        return Generator(name, 1, lambda noise: clock.spend(ms, 1.0), (3, 2, 2))

    noise = torch.zeros(4, 3, 2, 2)
    m = time_generators([gen("teacher", 40.0), gen("lines_1step", 10.0)], noise, rounds=4, min_sample_s=0.0)
    assert m["lines_1step"]["speedup"] == pytest.approx(4.0) and m["lines_1step"]["speedup_iqr"] == pytest.approx(0.0)
    assert m["teacher"]["timing_reliable"] == 0 and m["lines_1step"]["timing_reliable"] == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("warning: unreliable timing: busy machine: load average 3.90 on 2 cores")
