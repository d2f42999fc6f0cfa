"""benchmarks.calibration.calibrate_steps against the Gaussian oracle, whose exact ODE endpoint is the reference.

With data N(0.1, 0.3^2) and the oracle as the network, a sampler's PSNR against the exact endpoint
measures its discretisation error alone. Values in the comments were measured with the pinned
torch/diffusers versions on NOISE (16 x 3 x 8 x 8); each calibration below takes well under a second.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from lines_model import noise, samplers
from benchmarks.calibration import CalibrationResult, Trial, calibrate_steps, cost_order, median_psnr
from oracle import GaussianOracle  # test code: tests/ is on sys.path under pytest

CFG = dict(DDPMScheduler(clip_sample=False).config)  # epsilon, linear betas
NOISE = noise.noise_for(range(16), (3, 8, 8), seed=0)
ORACLE = GaussianOracle(CFG, 0.1, 0.3)
EXACT = ORACLE.endpoint(NOISE, 999)  # every DPM-Solver++ grid starts at t = 999


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _calibrate(candidates, target, **kw) -> CalibrationResult:
    return calibrate_steps(ORACLE, CFG, NOISE, target_psnr_db=target, reference=EXACT, candidates=candidates, **kw)


def test_median_psnr():
    a = torch.zeros(3, 1, 2, 2)
    assert median_psnr(a, a) == 100.0  # identical images: the PSNR cap
    # offsets 0.2, 0.4, 0.02 in [-1, 1] are 0.1, 0.2, 0.01 in [0, 1]: 20, ~14 and 40 dB; the median is 20
    b = torch.stack([torch.full((1, 2, 2), v) for v in (0.2, 0.4, 0.02)])
    assert median_psnr(b, a) == pytest.approx(20.0, abs=1e-4)


def test_psnr_increases_with_steps():
    steps = (4, 6, 8, 16, 32)
    r = _calibrate([(2, s) for s in steps], target=float("inf"), exhaustive=True)
    # measured: 24.5, 35.3, 49.1, 52.9, 63.8 dB
    psnrs = [t.psnr_db for t in r.trials]
    assert [t.steps for t in r.trials] == list(steps)
    assert all(b > a for a, b in zip(psnrs, psnrs[1:])), psnrs
    assert psnrs[-1] - psnrs[0] > 30  # the steps matter a lot: the comparison is not vacuous
    assert not r.met and r.chosen is None and r.best == r.trials[-1]


def test_picks_the_cheapest_candidate_meeting_the_target():
    # The benchmark's question at toy size: the fewest DPM-Solver++ steps as accurate as DDIM-50.
    target = median_psnr(samplers.ddim(ORACLE, CFG, NOISE, 50), EXACT)  # measured 38.2 dB
    # given in no particular order; at equal steps order 2 is listed (so tried) first
    candidates = [(3, 16), (2, 4), (2, 8), (2, 16), (3, 4), (2, 6), (3, 8), (3, 6), (2, 32)]
    full = _calibrate(candidates, target, exhaustive=True)
    by_cand = {(t.order, t.steps): t.psnr_db for t in full.trials}
    assert set(by_cand) == set(candidates)
    meeting = [c for c in cost_order(candidates) if by_cand[c] >= target]
    cheaper = [c for c in candidates if c[1] < meeting[0][1]]
    assert meeting and cheaper and all(by_cand[c] < target for c in cheaper)  # some candidates fall short

    r = _calibrate(candidates, target)
    # measured: (2, 6) 35.3 dB falls short, (3, 6) 42.2 dB meets it
    assert r.met and (r.chosen.order, r.chosen.steps) == meeting[0] == (3, 6)
    assert r.chosen.psnr_db >= target == r.target_psnr_db
    # tried cheapest first, stopped at the first that met the target, same numbers as the full run
    assert r.trials[-1] == r.chosen
    assert [t.steps for t in r.trials] == sorted(t.steps for t in r.trials)
    assert all(t.psnr_db < target for t in r.trials[:-1])
    assert all(by_cand[(t.order, t.steps)] == t.psnr_db for t in r.trials)
    assert full.chosen == r.chosen  # an exhaustive run picks the same one


def test_no_candidate_meets_the_target():
    seen: list[Trial] = []
    r = _calibrate([(2, 4), (3, 8)], target=1000.0, on_trial=seen.append)
    assert not r.met and r.chosen is None
    assert seen == list(r.trials) and len(seen) == 2  # every candidate was tried
    assert r.best == max(r.trials, key=lambda t: t.psnr_db)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no candidates"):
        _calibrate([], target=0.0)
    with pytest.raises(ValueError, match="bad candidate"):
        _calibrate([(0, 4)], target=0.0)
    with pytest.raises(ValueError, match="does not match"):
        calibrate_steps(ORACLE, CFG, NOISE, target_psnr_db=0.0, reference=EXACT[:2], candidates=[(2, 4)])
