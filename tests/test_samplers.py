"""Teacher samplers against the exact probability-flow ODE of Gaussian data, plus determinism.

For data N(mu, s^2 I) the oracle (tests/oracle.py) is the exact denoiser and
`oracle.endpoint(noise, t_first)` the exact ODE endpoint of noise started at the sampler's first
timestep, so a sampler's error against it is pure discretisation (and float32) error.
The tolerances below are RMS errors over 64 x 3 x 8 x 8 values; each comment gives the value
measured with the pinned torch/diffusers versions (noise_for(range(64), (3, 8, 8), seed=0)).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from lines_model import noise, samplers

from oracle import GaussianOracle  # tests/oracle.py


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).pow(2).mean().sqrt().item()


NOISE = noise.noise_for(range(64), (3, 8, 8), seed=0)

# name -> (scheduler config, mu, s, DDIM-1000 RMS bound, DPM-Solver++-20 RMS bound)
CASES = {
    # (a) DDPMScheduler defaults (epsilon, linear betas) without clipping.
    # measured: DDIM-1000 1.46e-3, DPM-Solver++-20 3.34e-3
    "eps-linear": (dict(DDPMScheduler(clip_sample=False).config), 0.1, 0.3, 2.5e-3, 6e-3),
    # (b) clip_sample on, but data N(0.1, 0.2^2) stays well inside [-1, 1] (|x| < 0.93), so the
    # clip never binds and the exact endpoint is still the target.
    # measured: DDIM-1000 1.50e-3, DPM-Solver++-20 1.69e-3
    "eps-linear-clip": (dict(DDPMScheduler(clip_sample=True).config), 0.1, 0.2, 2.5e-3, 4e-3),
    # (c) v-prediction, cosine schedule, trailing spacing (the tiny test teachers' config).
    # measured: DDIM-1000 7.39e-4, DPM-Solver++-20 6.80e-3 (plain grid; see the lambda_min test)
    "v-cosine-trailing": (
        dict(
            DDPMScheduler(
                clip_sample=False,
                prediction_type="v_prediction",
                beta_schedule="squaredcos_cap_v2",
                timestep_spacing="trailing",
            ).config
        ),
        0.1,
        0.3,
        1.5e-3,
        1.2e-2,
    ),
}


def _error(sampler: str, cfg: dict, mu: float, s: float, steps: int) -> float:
    """RMS error of `sampler` with `steps` evaluations against the exact endpoint from its first timestep."""
    oracle = GaussianOracle(cfg, mu, s)
    if sampler == "ddim":
        out, t_first = samplers.ddim(oracle, cfg, NOISE, steps), samplers.ddim_scheduler(cfg, steps).timesteps[0]
    else:
        out, t_first = (
            samplers.dpmsolver_pp(oracle, cfg, NOISE, steps),
            samplers.dpmsolver_scheduler(cfg, steps).timesteps[0],
        )
    assert out.shape == NOISE.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    return _rms(out, oracle.endpoint(NOISE, int(t_first)))


def test_both_samplers_start_at_the_last_training_timestep():
    # in every case, so oracle.endpoint(NOISE, 999) is the target of both
    for cfg, *_ in CASES.values():
        assert int(samplers.ddim_scheduler(cfg, 1000).timesteps[0]) == 999
        assert int(samplers.dpmsolver_scheduler(cfg, 20).timesteps[0]) == 999
        assert len(samplers.dpmsolver_scheduler(cfg, 20).timesteps) == 20


@pytest.mark.parametrize("case", list(CASES))
def test_samplers_land_on_the_exact_ode_endpoint(case):
    cfg, mu, s, ddim_tol, dpm_tol = CASES[case]
    oracle = GaussianOracle(cfg, mu, s)
    exact = oracle.endpoint(NOISE, 999)
    # the target is far from the input noise and from the mean, so small errors mean something
    assert _rms(exact, NOISE) > 0.5
    assert _rms(exact, torch.full_like(exact, mu)) == pytest.approx(s, rel=0.05)
    if cfg["clip_sample"]:
        assert exact.abs().max() < 0.95  # (b): the clip cannot bind on the exact trajectory

    err_ddim_1000 = _error("ddim", cfg, mu, s, 1000)
    err_dpm_20 = _error("dpmsolver++", cfg, mu, s, 20)
    assert err_ddim_1000 < ddim_tol, f"DDIM-1000 RMS error {err_ddim_1000:.3e}"
    assert err_dpm_20 < dpm_tol, f"DPM-Solver++-20 RMS error {err_dpm_20:.3e}"


@pytest.mark.parametrize("case", list(CASES))
def test_ddim_converges_and_dpmsolver_beats_ddim_at_equal_steps(case):
    cfg, mu, s, *_ = CASES[case]
    e50, e1000 = _error("ddim", cfg, mu, s, 50), _error("ddim", cfg, mu, s, 1000)
    # measured DDIM-50: 2.50e-2 / 2.38e-2 / 1.38e-2, i.e. 17x / 16x / 19x the DDIM-1000 error
    # (first order: 20x the steps); a sampler that ignored the network would not shrink at all.
    assert e1000 < e50 / 8, (e50, e1000)
    assert e50 > 5e-3  # 50 steps are visibly inexact: the tolerances above are not vacuous
    d20, p20 = _error("ddim", cfg, mu, s, 20), _error("dpmsolver++", cfg, mu, s, 20)
    # measured DDIM-20: 5.92e-2 / 5.49e-2 / 3.33e-2 vs DPM-Solver++-20: 3.34e-3 / 1.69e-3 / 6.80e-3
    # (ratios 18x / 33x / 4.9x)
    assert p20 < d20 / 2.5, (d20, p20)


def test_dpmsolver_order_and_steps_matter():
    cfg, mu, s, *_ = CASES["eps-linear"]
    # measured, 20 steps: order 1 (first-order DPM-Solver++ = DDIM on log-SNR-uniform steps) 3.44e-2,
    # order 2 3.34e-3; order 2 with 50 steps 4.37e-4
    e1 = _error_order(cfg, mu, s, 20, 1)
    e2 = _error_order(cfg, mu, s, 20, 2)
    assert e2 < e1 / 2, (e1, e2)
    assert _error("dpmsolver++", cfg, mu, s, 50) < e2 / 3


def _error_order(cfg, mu, s, steps, order, lambda_min=None):
    oracle = GaussianOracle(cfg, mu, s)
    out = samplers.dpmsolver_pp(oracle, cfg, NOISE, steps, order=order, lambda_min=lambda_min)
    return _rms(out, oracle.endpoint(NOISE, 999))


def _lambda(cfg: dict, t: np.ndarray) -> np.ndarray:
    """log-SNR at (fractional) t, with log sigma linear in t between integers as the schedulers do."""
    lam = samplers.log_snr(DDPMScheduler.from_config(cfg).alphas_cumprod)
    return np.interp(t, np.arange(len(lam)), lam)


def test_log_snr_grid_is_uniform_in_lambda_from_the_last_timestep():
    cfg = CASES["v-cosine-trailing"][0]
    lam_0 = _lambda(cfg, np.array([0.0]))[0]
    for steps in (5, 20, 500):  # 500: the bench's reference; fractional timesteps never collide
        t, sigmas = samplers.log_snr_grid(DDPMScheduler.from_config(cfg).alphas_cumprod, steps)
        lam = _lambda(cfg, t)
        assert len(t) == steps and t[0] == 999 and np.all(np.diff(t) < 0) and t[-1] > 0
        gaps = np.diff(np.append(lam, lam_0))  # the grid stops one spacing short of lambda(0)
        assert np.allclose(gaps, gaps[0], rtol=1e-6), gaps
        np.testing.assert_allclose(np.log(sigmas), -lam, rtol=1e-9)  # the network's t matches the solver's sigma
    # lambda_min: one step from lambda(T) = -9.9 to -5, then uniform from -5
    t, _ = samplers.log_snr_grid(DDPMScheduler.from_config(cfg).alphas_cumprod, 20, lambda_min=-5.0)
    lam = _lambda(cfg, t)
    assert t[0] == 999 and lam[0] < -9 and lam[1] == pytest.approx(-5.0, abs=1e-9)
    gaps = np.diff(np.append(lam[1:], lam_0))
    assert np.allclose(gaps, gaps[0], rtol=1e-6)
    # a schedule that never goes below lambda_min (linear betas: lambda(T) = -5.07) keeps the plain grid
    lin = DDPMScheduler().alphas_cumprod
    np.testing.assert_array_equal(samplers.log_snr_grid(lin, 20, -5.0)[0], samplers.log_snr_grid(lin, 20)[0])


def test_lambda_min_helps_on_the_capped_cosine_schedule():
    cfg, mu, s, *_ = CASES["v-cosine-trailing"]
    # measured, order 3, 20 steps: plain grid 9.38e-3, lambda_min -5 2.75e-3
    plain, clipped = _error_order(cfg, mu, s, 20, 3), _error_order(cfg, mu, s, 20, 3, lambda_min=-5.0)
    assert clipped < plain / 2, (plain, clipped)
    assert clipped < 4e-3


@pytest.mark.parametrize(
    "cfg",
    [
        dict(DDPMScheduler(clip_sample=True).config),
        dict(
            DDPMScheduler(
                clip_sample=True,
                prediction_type="v_prediction",
                beta_schedule="squaredcos_cap_v2",
                timestep_spacing="trailing",
            ).config
        ),
    ],
    ids=["eps-linear", "v-cosine"],
)
@pytest.mark.parametrize("sampler,steps", [("ddim", 20), ("ddim", 200), ("dpmsolver++", 5), ("dpmsolver++", 20)])
def test_clip_sample_keeps_outputs_in_range(cfg, sampler, steps):
    mu, s = 0.8, 0.5
    oracle = GaussianOracle(cfg, mu, s)
    assert (oracle.endpoint(NOISE, 999) > 1).float().mean() > 0.3  # unclipped data leave [-1, 1] often
    out = samplers.teacher_sampler(sampler)(oracle, cfg, NOISE, steps)
    assert out.min() >= -1 and out.max() <= 1
    assert out.max() > 0.99  # the clip binds (outputs pile up at the edge), they are not merely shrunk

    # without clip_sample the same data do leave [-1, 1]: the range comes from the config
    free = dict(cfg, clip_sample=False)
    assert samplers.teacher_sampler(sampler)(GaussianOracle(free, mu, s), free, NOISE, steps).max() > 1.2


@pytest.mark.parametrize("sampler,steps", [("ddim", 10), ("dpmsolver++", 10)])
def test_samplers_are_deterministic(sampler, steps):
    cfg, mu, s, *_ = CASES["v-cosine-trailing"]
    oracle = GaussianOracle(cfg, mu, s)
    fn = samplers.teacher_sampler(sampler)
    a, b = fn(oracle, cfg, NOISE, steps), fn(oracle, cfg, NOISE.clone(), steps)
    assert torch.equal(a, b)
    assert not torch.equal(a, fn(oracle, cfg, noise.noise_for(range(64), (3, 8, 8), seed=1), steps))


def test_noise_is_indexed_by_seed_stream_and_index():
    shape = (3, 4, 4)
    batch = noise.noise_for([0, 1, 2, 7, 100], shape, seed=5)
    assert batch.shape == (5, *shape) and batch.dtype == torch.float32
    for k, i in enumerate([0, 1, 2, 7, 100]):
        assert torch.equal(batch[k], noise.noise_for([i], shape, seed=5)[0])
    # a range split across "processes" equals the whole range
    assert torch.equal(
        torch.cat([noise.noise_for(range(0, 3), shape, 5), noise.noise_for(range(3, 8), shape, 5)]),
        noise.noise_for(range(8), shape, 5),
    )
    assert torch.equal(noise.noise_for([3], shape, seed=5), noise.noise_for([3], shape, seed=5))
    # different items, seeds and streams all differ
    assert not torch.equal(batch[0], batch[1])
    assert not torch.equal(noise.noise_for([0], shape, seed=5), noise.noise_for([0], shape, seed=6))
    assert not torch.equal(
        noise.noise_for([0], shape, seed=5, stream=noise.TRAIN),
        noise.noise_for([0], shape, seed=5, stream=noise.HELDOUT),
    )
    # and it is standard normal
    big = noise.noise_for(range(64), (3, 16, 16), seed=0)
    assert abs(big.mean().item()) < 0.03 and abs(big.std().item() - 1) < 0.03


def test_teacher_sampler_names():
    import typing

    from lines_model.config.pairs import PairsCfg

    # every name the params schema accepts for pairs.sampler has a sampler, and no other name
    assert set(typing.get_args(typing.get_type_hints(PairsCfg)["sampler"])) == set(samplers.TEACHER_SAMPLERS)
    # each name runs its own sampler: at equal steps DPM-Solver++ is the more accurate (test above)
    cfg, mu, s, *_ = CASES["eps-linear"]
    oracle = GaussianOracle(cfg, mu, s)
    exact = oracle.endpoint(NOISE, 999)
    errors = {
        name: _rms(samplers.teacher_sampler(name)(oracle, cfg, NOISE, 20), exact) for name in ("ddim", "dpmsolver++")
    }
    assert errors["dpmsolver++"] < errors["ddim"] / 2.5, errors
    with pytest.raises(ValueError, match=r"pairs\.sampler.*'euler'.*ddim.*dpmsolver\+\+"):
        samplers.teacher_sampler("euler")
