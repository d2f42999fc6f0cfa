"""Progressive distillation (Salimans & Ho, ICLR 2022) as a target function.

A student with N DDIM steps learns to do in one step what its teacher does in two. Both run on
the same nested grid of integer timesteps t_k = floor(T_max * k / N), k = N..1, then a last step
to the clean image (alpha_bar = 1), so the 2N grid contains every point of the N grid. The
student is initialised from the teacher and reads the copied network in the teacher's own
parametrisation when that is v or x, and an epsilon teacher's as "epsilon_bounded"
(parametrisation.student_prediction): the exact eps conversion cannot represent the one-step map,
whose target at t = T is an image, not noise.

Symbols: alpha_bar(t) = prod(1 - beta); z_t = alpha_t x + sigma_t eps with alpha_t = sqrt(alpha_bar),
sigma_t = sqrt(1 - alpha_bar).
"""

from __future__ import annotations

import torch
from lines_model import noise_schedule, parametrisation
from lines_model.losses import distance


def grid(steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """Timesteps t_N > ... > t_1 of an N-step sampler; the clean end point is implicit (-1)."""
    T = num_train_timesteps - 1
    return [(T * k) // steps for k in range(steps, 0, -1)]


class Schedule:
    """alpha_t and sigma_t of a DDPM schedule, with index -1 meaning clean (alpha 1, sigma 0)."""

    def __init__(self, scheduler_config: dict, device="cpu"):
        s = noise_schedule.ddpm(scheduler_config)
        ab = torch.cat([s.alphas_cumprod.double(), torch.ones(1, dtype=torch.float64)])  # [-1] -> clean
        self.alpha_bar = ab.to(device)
        self.prediction_type = s.config.prediction_type
        self.clip = bool(s.config.clip_sample)
        self.clip_range = float(s.config.clip_sample_range)
        self.num_train_timesteps = s.config.num_train_timesteps

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.alpha_bar[t].float().view(-1, 1, 1, 1)
        return ab.sqrt(), (1 - ab).clamp(min=0).sqrt()

    def to_x_eps(self, out: torch.Tensor, z: torch.Tensor, t: torch.Tensor, prediction_type: str | None = None):
        """(x_hat, eps_hat) from a network output in its parametrisation (parametrisation.to_x)."""
        a, s = self.alpha_sigma(t)
        kind = prediction_type or self.prediction_type
        x = parametrisation.to_x(out, z, a, s, kind)
        if kind == "epsilon":
            eps = out
        elif kind == "v_prediction":
            eps = s * z + a * out
        else:
            eps = (z - a * x) / s.clamp(min=1e-8)
        if self.clip:
            x = x.clamp(-self.clip_range, self.clip_range)
        return x, eps

    def ddim_step(self, x: torch.Tensor, eps: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
        """Deterministic DDIM (Song et al. 2021, eq. 12 with sigma = 0): z_s = alpha_s x + sigma_s eps."""
        a, s = self.alpha_sigma(t_next)
        return a * x + s * eps


def _call(net, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # The clean end point (-1) is never fed to a network, so t is a real timestep here.
    return net(z, t).sample.float()


@torch.no_grad()
def sample(
    net, scheduler_config: dict, noise: torch.Tensor, steps: int, *, prediction_type: str | None = None
) -> torch.Tensor:
    """N-step DDIM on the nested grid: the sampler of progressive-distillation students."""
    device = next(iter(net.parameters()), noise).device  # parameter-free oracles run where the noise is
    sch = Schedule(scheduler_config, device)
    z = noise.to(device)
    ts = grid(steps, sch.num_train_timesteps) + [-1]
    for t, t_next in zip(ts[:-1], ts[1:]):
        tt = torch.full((z.shape[0],), t, device=device, dtype=torch.long)
        x, eps = sch.to_x_eps(_call(net, z, tt), z, tt, prediction_type)
        z = sch.ddim_step(x, eps, torch.full_like(tt, t_next)) if t_next >= 0 else x
    return z


class PDLoss:
    """Loss of one round: the student's one step from z_t must land where two teacher steps land.

    For the student step t -> t'' (teacher: t -> t' -> t''), the target is the x_tilde that makes
    one DDIM step from z_t reach the teacher's z_t'' (Salimans & Ho 2022, Algorithm 2):
        x_tilde = (z_t'' - (sigma_t'' / sigma_t) z_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t),
    and x_tilde = z_t'' when t'' is the clean end point.
    """

    def __init__(
        self,
        teacher,
        teacher_prediction: str,
        student_prediction: str,
        scheduler_config: dict,
        student_steps: int,
        kind: str,
    ):
        self.teacher, self.kind = teacher, kind
        self.teacher_prediction, self.student_prediction = teacher_prediction, student_prediction
        self.scheduler_config, self.N = scheduler_config, student_steps
        self._sch: Schedule | None = None

    def __call__(self, net, noise: torch.Tensor, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        device = clean.device
        if self._sch is None or self._sch.alpha_bar.device != device:
            self._sch = Schedule(self.scheduler_config, device)
        sch, n = self._sch, clean.shape[0]
        fine = torch.tensor(grid(2 * self.N, sch.num_train_timesteps) + [-1], device=device)
        k = torch.randint(0, self.N, (n,), generator=generator).to(device)  # student step index
        t, t_mid, t_next = fine[2 * k], fine[2 * k + 1], fine[2 * k + 2]
        a_t, s_t = sch.alpha_sigma(t)
        # Fresh eps, independent of the data sample (a pair's own noise is coupled to its image).
        eps = torch.randn(clean.shape, generator=generator).to(device)
        z_t = a_t * clean + s_t * eps
        # The teacher's two steps and the target stay in fp32 under bf16 autocast: the target divides
        # by alpha'' - (sigma''/sigma) alpha, which multiplies the teacher's error in z'' by up to
        # 10x on the shapes teacher's cosine schedule and 185x on CIFAR-10's linear one (from 32 steps).
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            x1, e1 = sch.to_x_eps(_call(self.teacher, z_t, t), z_t, t, self.teacher_prediction)
            z_mid = sch.ddim_step(x1, e1, t_mid)
            # t_mid is never the clean point, since t > t_mid > t_next >= -1.
            x2, e2 = sch.to_x_eps(_call(self.teacher, z_mid, t_mid), z_mid, t_mid, self.teacher_prediction)
            last = (t_next < 0).view(-1, 1, 1, 1)
            z_next = torch.where(last, x2, sch.ddim_step(x2, e2, t_next.clamp(min=0)))
            a_n, s_n = sch.alpha_sigma(t_next)
            ratio = s_n / s_t
            x_tilde = torch.where(last, x2, (z_next - ratio * z_t) / (a_n - ratio * a_t))
        target = parametrisation.output_for(x_tilde, z_t, a_t, s_t, self.student_prediction)
        return distance(_call(net, z_t, t), target, self.kind)
