"""An exact denoiser for Gaussian data, used to check samplers against a closed form.

For data x_0 ~ N(mu, s^2 I) and x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps, x_t is Gaussian with
variance v_t = ab s^2 + 1 - ab, so E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) mu) / v_t.
The probability-flow ODE keeps the standardised coordinate (x_t - sqrt(ab) mu) / sqrt(v_t)
fixed, so the endpoint of noise x_T started at time T is mu + s (x_T - sqrt(ab_T) mu) / sqrt(v_T).

A test helper (tests/test_samplers.py, tests/test_training.py), not part of the pipeline.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from diffusers import DDPMScheduler

from lines_model.samplers import log_snr


class GaussianOracle(torch.nn.Module):
    """Callable like a UNet2DModel: oracle(x_t, t).sample is the exact eps (or v, or x_0) prediction."""

    def __init__(self, scheduler_config: dict, mu: float, s: float):
        super().__init__()
        sched = DDPMScheduler.from_config(scheduler_config)
        self.register_buffer("alpha_bar", sched.alphas_cumprod.double())
        self.register_buffer("log_sigma", -torch.from_numpy(log_snr(sched.alphas_cumprod)))
        self.prediction_type = sched.config.prediction_type
        self.mu, self.s = mu, s

    def forward(self, x_t: torch.Tensor, t) -> SimpleNamespace:
        ab = self.alpha_bar_at(torch.as_tensor(t, device=self.alpha_bar.device))
        if ab.ndim == 1:  # one timestep per sample
            ab = ab.view(-1, *([1] * (x_t.ndim - 1)))
        x = x_t.double()
        v_t = ab * self.s**2 + 1 - ab
        eps = (1 - ab).sqrt() * (x - ab.sqrt() * self.mu) / v_t
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        out = {"epsilon": eps, "sample": x0, "v_prediction": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[
            self.prediction_type
        ]
        return SimpleNamespace(sample=out.to(x_t.dtype))

    def alpha_bar_at(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar at integer or fractional t; between integers log sigma is linear in t, the
        convention of diffusers' schedulers (sigma = sqrt((1 - ab) / ab))."""
        if not t.is_floating_point():
            return self.alpha_bar[t.long()]
        t = t.double().clamp(0, len(self.alpha_bar) - 1)
        lo = t.floor().long().clamp(max=len(self.alpha_bar) - 2)
        w = t - lo
        log_sigma = (1 - w) * self.log_sigma[lo] + w * self.log_sigma[lo + 1]
        return 1 / (1 + torch.exp(2 * log_sigma))

    def endpoint(self, noise: torch.Tensor, t_start: int) -> torch.Tensor:
        """Exact ODE endpoint of `noise` taken as x_{t_start}."""
        ab = self.alpha_bar[t_start]
        z = (noise.double() - ab.sqrt() * self.mu) / (ab * self.s**2 + 1 - ab).sqrt()
        return (self.mu + self.s * z).to(noise.dtype)
