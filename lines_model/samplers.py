"""Samplers: plain functions of (network, noise, steps) that return images in [-1, 1].

Teacher samplers integrate the probability-flow ODE of a DDPM with a diffusers scheduler
built from the teacher's own scheduler config (betas, prediction type, clip_sample, spacing).
Student samplers run a one-step (or k-step) student. All are deterministic given the noise.
"""

from __future__ import annotations

import inspect
from typing import Callable

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from tqdm.auto import tqdm

from lines_model.line import point_on_line


def _config_for(cls, config: dict, **overrides) -> dict:
    """The keys of `config` that `cls` accepts, plus overrides (avoids diffusers' unknown-key warnings)."""
    accepted = set(inspect.signature(cls.__init__).parameters)
    out = {k: v for k, v in config.items() if k in accepted}
    out.update(overrides)
    return out


def ddim_scheduler(config: dict, steps: int) -> DDIMScheduler:
    # eta = 0 makes DDIM the deterministic probability-flow sampler; set_alpha_to_one lands the
    # last step exactly on the predicted x_0 (clipped when the teacher says clip_sample).
    s = DDIMScheduler(**_config_for(DDIMScheduler, config, set_alpha_to_one=True))
    s.set_timesteps(steps)
    return s


def log_snr(alphas_cumprod: torch.Tensor) -> np.ndarray:
    """lambda(t) = log(alpha_t / sigma_t) at the integer timesteps of a schedule (decreasing in t)."""
    ab = alphas_cumprod.double().numpy()
    return -0.5 * np.log((1 - ab) / ab)


def log_snr_grid(
    alphas_cumprod: torch.Tensor, steps: int, lambda_min: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(timesteps, sigmas) of `steps` DPM-Solver++ evaluations, uniform in log-SNR lambda.

    The grid starts at the last training timestep T (the teacher's own start) and spaces the
    remaining points uniformly in lambda up to, not including, lambda(0): the last step then goes
    to sigma = 0 and returns the data prediction. With `lambda_min`, the second point is at
    lambda_min instead of one uniform spacing above lambda(T), so the stretch lambda < lambda_min is
    crossed in a single step. That matters for schedules with a cliff at the end: the capped cosine
    schedule falls from lambda = -4.3 at t = 990 to -9.9 at t = 999, where the data prediction
    barely changes, yet a plain lambda-uniform grid spends over a third of its steps there.
    Timesteps are fractional, and sigma(t) follows diffusers' interpolation (log sigma linear in
    t), so the network is always evaluated at the time the solver assumes.
    """
    log_sigma = -log_snr(alphas_cumprod)  # increasing in t, as np.interp needs
    lam_T, lam_0 = -log_sigma[-1], -log_sigma[0]
    if not np.isfinite(lam_T):
        raise ValueError("dpmsolver++: the schedule reaches zero SNR at its last timestep; use the ddim sampler")
    start = lam_T + (lam_0 - lam_T) / steps  # the second point of the plain uniform grid
    if lambda_min is not None:
        start = max(start, lambda_min)
    lams = np.concatenate([[lam_T], np.linspace(start, lam_0, steps - 1, endpoint=False)])
    timesteps = np.interp(-lams, log_sigma, np.arange(len(log_sigma), dtype=np.float64))
    return timesteps, np.exp(-lams)


def dpmsolver_scheduler(
    config: dict, steps: int, order: int = 2, lambda_min: float | None = None
) -> DPMSolverMultistepScheduler:
    clip = bool(config.get("clip_sample", False))
    # DPM-Solver++ has no clip_sample; its thresholding clamps the data prediction to [-s, s] / s with
    # s = clamp(quantile of |x_0|, 1, sample_max_value). With the clip range 1 (DDPM's default, and
    # every teacher here) s is 1: exactly the static clip of DDPM/DDIM. A wider range would make it
    # dynamic thresholding between 1 and the range.
    s = DPMSolverMultistepScheduler(
        **_config_for(
            DPMSolverMultistepScheduler,
            config,
            algorithm_type="dpmsolver++",
            solver_order=order,
            thresholding=clip or bool(config.get("thresholding", False)),
            sample_max_value=float(config.get("clip_sample_range", 1.0))
            if clip
            else float(config.get("sample_max_value", 1.0)),
            final_sigmas_type="zero",
            use_lu_lambdas=False,
            timestep_spacing="linspace",
            lower_order_final=True,
        )
    )
    s.set_timesteps(steps)  # resets the solver's state; the grid is then replaced by ours
    # Steps uniform in log-SNR, as in the DPM-Solver papers, rather than diffusers' grids: its
    # t-uniform spacing was 10-20x less accurate against the Gaussian oracle (tests/test_samplers.py),
    # and its use_lu_lambdas grid hands the network timesteps truncated to integers while the
    # solver steps with the exact sigmas.
    timesteps, sigmas = log_snr_grid(s.alphas_cumprod, steps, lambda_min)
    s.timesteps = torch.from_numpy(timesteps).float()
    s.sigmas = torch.from_numpy(np.append(sigmas, 0.0)).float()
    return s


@torch.no_grad()
def _run(scheduler, unet, noise: torch.Tensor, progress: bool, step_kwargs: dict) -> torch.Tensor:
    device = next(iter(unet.parameters()), noise).device  # parameter-free oracles run where the noise is
    x = noise.to(device) * scheduler.init_noise_sigma
    for t in tqdm(scheduler.timesteps, disable=not progress, leave=False, desc="sampling"):
        x_in = scheduler.scale_model_input(x, t)
        out = unet(x_in, t.to(device)).sample.float()
        x = scheduler.step(out, t, x, **step_kwargs).prev_sample
    return x


def ddim(
    unet,
    scheduler_config: dict,
    noise: torch.Tensor,
    steps: int,
    *,
    order: int = 1,
    lambda_min: float | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Deterministic DDIM (eta 0) with `steps` network evaluations. `order` and `lambda_min` are
    DPM-Solver++'s; DDIM takes them so that every teacher sampler has one signature, and ignores them."""
    return _run(ddim_scheduler(scheduler_config, steps), unet, noise, progress, {"eta": 0.0})


def dpmsolver_pp(
    unet,
    scheduler_config: dict,
    noise: torch.Tensor,
    steps: int,
    *,
    order: int = 2,
    lambda_min: float | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Multistep DPM-Solver++ (Lu et al. 2022) with `steps` network evaluations (see log_snr_grid)."""
    return _run(dpmsolver_scheduler(scheduler_config, steps, order, lambda_min), unet, noise, progress, {})


TEACHER_SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"ddim": ddim, "dpmsolver++": dpmsolver_pp}


def teacher_sampler(name: str) -> Callable[..., torch.Tensor]:
    try:
        return TEACHER_SAMPLERS[name]
    except KeyError:
        raise ValueError(
            f"pairs.sampler: unknown sampler {name!r}; expected one of {', '.join(TEACHER_SAMPLERS)}"
        ) from None


@torch.no_grad()
def lines_sample(student, noise: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """The Lines student (students.LinesStudent): C_hat = S(N, 0); a k-step variant re-noises along
    the same line, x = t_i * C_hat + (1 - t_i) * N with t_i = i/k, and predicts again: C_hat = S(x, t_i)."""
    device = next(student.parameters()).device
    n = noise.to(device)
    clean = student(n, 0.0)
    for i in range(1, steps):
        t = i / steps
        clean = student(point_on_line(n, clean, t), t)
    return clean
