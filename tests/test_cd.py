"""Consistency distillation where the truth is known: Gaussian data N(MU, S^2), whose exact denoiser,
ODE and consistency function have closed forms (tests/oracle.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from diffusers import DDPMScheduler

from conftest import shipped_params
from lines_model.methods import cd
from lines_model.methods.pd import target as pd_target
from lines_model.students import LinesStudent
from lines_model.training import train
from oracle import GaussianOracle

MU, S = 0.2, 0.5


def _oracle(prediction: str, s: float = S):
    cfg = dict(
        DDPMScheduler(prediction_type=prediction, clip_sample=False).config
    )  # linear betas: google/ddpm-cifar10-32's
    return GaussianOracle(cfg, MU, s), cfg


class ExactF(torch.nn.Module):
    """The exact consistency function of N(MU, s^2) data: the ODE maps x at sigma to
    MU + sqrt(s^2 + sigma_min^2) (x - MU) / sqrt(s^2 + sigma^2) at sigma_min. That ratio is raised to
    `power`, a parameter that keeps f(x, sigma_min) = x whatever its value and is consistent at 1 alone."""

    def __init__(self, s: float, sigma_min: float):
        super().__init__()
        self.s, self.sigma_min = s, sigma_min
        self.power = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, sigma):
        sigma = cd._per_image(sigma, x).double().view(-1, 1, 1, 1)
        ratio = math.sqrt(self.s**2 + self.sigma_min**2) / (self.s**2 + sigma**2).sqrt()
        return (MU + ratio**self.power * (x.double() - MU)).to(x.dtype)


def test_the_boundary_condition_holds_for_any_network():
    oracle, cfg = _oracle("epsilon")
    f = cd.ConsistencyFunction(LinesStudent(oracle, "teacher", scheduler_config=cfg), sigma_min=0.01, sigma_data=0.5)
    x = torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(f(x, 0.01), x, rtol=0, atol=0)


@pytest.mark.parametrize("prediction", ["v_prediction", "sample"])
def test_a_lines_students_t_reads_as_the_noise_level(prediction):
    """S(X_t, t) with t = 1 / (1 + sigma) is the denoiser at sigma: for the exact student it is the
    posterior mean E[C | C + sigma N = x] = MU + S^2 (x - MU) / (S^2 + sigma^2)."""
    oracle, cfg = _oracle(prediction)
    f = cd.ConsistencyFunction(LinesStudent(oracle, "teacher", scheduler_config=cfg), sigma_min=0.01, sigma_data=0.5)
    g = torch.Generator().manual_seed(1)
    for sigma in (0.05, 0.5, 2.0, 20.0):
        x = MU + S * torch.randn(8, 3, 4, 4, generator=g) + sigma * torch.randn(8, 3, 4, 4, generator=g)
        posterior = MU + S**2 * (x.double() - MU) / (S**2 + sigma**2)
        torch.testing.assert_close(f.denoise(x, sigma).double(), posterior, rtol=0, atol=2e-3)


def test_the_euler_step_is_the_teachers_ddim_step():
    """Between integer timesteps, one Euler step in sigma is the DDIM step PD's sampler takes."""
    oracle, cfg = _oracle("epsilon")
    ode, sch = cd.TeacherODE(oracle, cfg), pd_target.Schedule(cfg)
    t, t_next = torch.full((6,), 700), torch.full((6,), 400)
    z = torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    x_hat, eps = sch.to_x_eps(oracle(z, t).sample, z, t)
    z_next = sch.ddim_step(x_hat, eps, t_next)
    ab = sch.alpha_bar.float()
    sigma, sigma_next = ((1 - ab[t]) / ab[t]).sqrt(), ((1 - ab[t_next]) / ab[t_next]).sqrt()
    x_next = ode.step(z / ab[t].sqrt().view(-1, 1, 1, 1), sigma, sigma_next, "euler")
    torch.testing.assert_close(x_next * ab[t_next].sqrt().view(-1, 1, 1, 1), z_next, rtol=0, atol=1e-4)


def _loss(s: float, n_points: int, solver: str) -> float:
    oracle, cfg = _oracle("epsilon", s)
    sigma_min, sigma_max = cd.teacher_sigmas(cfg)
    f = ExactF(s, sigma_min)
    loss = cd.CDLoss(
        cd.TeacherODE(oracle, cfg),
        cd.TargetNetwork(f, 0.0),
        cd.discretisation(sigma_min, 80.0, n_points, 7.0),
        solver,
        "mse",
    )
    clean = (MU + s * torch.randn(512, 3, 4, 4, generator=torch.Generator().manual_seed(3))).float()
    return loss(f, None, clean, torch.Generator().manual_seed(4)).item()


def test_the_loss_is_zero_at_the_exact_consistency_function():
    # Point-mass data: the ODE's trajectories are straight, so one teacher step is exact.
    assert _loss(0.0, 18, "euler") < 1e-10
    # Gaussian data: only the teacher's one step errs, to second order in the step (Euler) and third (Heun).
    assert _loss(S, 18, "heun") < _loss(S, 18, "euler") / 5
    assert _loss(S, 72, "heun") < _loss(S, 18, "heun") / 50


def test_a_student_equal_to_it_stays_put_under_training(tmp_path):
    oracle, cfg = _oracle("epsilon", 0.0)
    sigma_min, _ = cd.teacher_sigmas(cfg)
    f = ExactF(0.0, sigma_min)
    target = cd.TargetNetwork(f, 0.5)
    loss = cd.CDLoss(cd.TeacherODE(oracle, cfg), target, cd.discretisation(sigma_min, 80.0, 18, 7.0), "euler", "huber")

    class PointMass(torch.utils.data.Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            # float64, so that the residual at the exact solution is rounding alone, below Adam's epsilon
            return torch.zeros(3, 4, 4, dtype=torch.float64), torch.full((3, 4, 4), MU, dtype=torch.float64)

    p = shipped_params()
    cfg_train = dataclasses.replace(p.cd, lr=1e-2, batch_size=16, warmup_steps=0, ema_decay=0.0)
    result = train(
        f,
        loss,
        PointMass(),
        cfg_train,
        dataclasses.replace(p.runtime, mixed_precision="no"),
        steps=5,
        checkpoint_dir=tmp_path / "ckpt",
        identity={},
        hook=target,
    )
    # Its gradient is rounding alone (the sigma -> timestep map is float32); Adam's steps from it stay
    # far below one learning rate (5e-2 over these 5 steps).
    clean = torch.full((16, 3, 4, 4), MU, dtype=torch.float64)
    fresh = ExactF(0.0, sigma_min)
    loss.target = cd.TargetNetwork(fresh, 0.0)
    (grad,) = torch.autograd.grad(loss(fresh, None, clean, torch.Generator().manual_seed(0)), fresh.power)
    assert abs(grad.item()) < 1e-6
    assert result.ema_model.power.item() == pytest.approx(1.0, abs=1e-3)
    assert target.net.power.item() == pytest.approx(1.0, abs=1e-3)
    # A student off the solution moves: the test can fail.
    off = ExactF(0.0, sigma_min)
    with torch.no_grad():
        off.power.fill_(1.5)
    moved = train(
        off,
        cd.CDLoss(loss.ode, cd.TargetNetwork(off, 0.5), loss.sigmas, "euler", "huber"),
        PointMass(),
        cfg_train,
        dataclasses.replace(p.runtime, mixed_precision="no"),
        steps=5,
        checkpoint_dir=tmp_path / "ckpt2",
        identity={},
    )
    assert 1.5 - moved.ema_model.power.item() > 1e-2  # toward 1


def test_one_and_two_step_sampling_reproduce_the_teachers_ode():
    oracle, cfg = _oracle("epsilon")
    sigma_min, sigma_max = cd.teacher_sigmas(cfg)
    f = ExactF(S, sigma_min)
    noise = torch.randn(256, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    # One step from the teacher's starting point lands on its ODE endpoint for that noise.
    torch.testing.assert_close(cd.sample(f, noise, sigma_max, [1.0], 1), oracle.endpoint(noise, 999), rtol=0, atol=2e-3)
    # Two steps re-noise with fresh noise: the samples follow the data distribution N(MU, S^2).
    x = cd.sample(f, noise, sigma_max, [1.0], 2)
    assert x.mean().item() == pytest.approx(MU, abs=0.01) and x.std().item() == pytest.approx(S, rel=0.02)
    assert not torch.allclose(x, cd.sample(f, noise, sigma_max, [1.0], 1))
    # The fresh noise is the image's own: the same noise gives the same image, whatever the batch.
    torch.testing.assert_close(cd.sample(f, noise[:7], sigma_max, [1.0], 2), x[:7])
