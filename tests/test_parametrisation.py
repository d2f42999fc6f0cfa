"""Reading a copied teacher network as a few-step generator (lines_model/parametrisation.py).

The epsilon teacher is a Gaussian oracle (the exact eps of N(MU, S^2) data) on the linear schedule of
google/ddpm-cifar10-32, where alpha at the last timestep is 0.0064.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from lines_model import parametrisation
from lines_model.methods.pd import target as progressive
from lines_model.students import LinesStudent
from oracle import GaussianOracle

MU, S = 0.2, 0.5


def _eps_oracle(mu: float = MU) -> tuple[GaussianOracle, dict]:
    cfg = dict(DDPMScheduler(prediction_type="epsilon").config)  # linear betas 1e-4..0.02, 1000 steps
    return GaussianOracle(cfg, mu, S), cfg


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def _one_step_checks(x_hat: torch.Tensor, noise: torch.Tensor, clean: torch.Tensor) -> None:
    # Not anti-correlated with the noise (zero-mean data: the teacher's image is S times the noise),
    # and no worse than predicting zero: the two checks that reading eps as v fails (it gives an image
    # anti-correlated with the noise, with an MSE several times that of predicting zero).
    assert _cosine(x_hat, noise) > 0
    mse, mse_zero = (x_hat - clean).pow(2).mean().item(), clean.pow(2).mean().item()
    assert mse <= mse_zero, (mse, mse_zero)


def test_an_epsilon_teacher_copied_into_a_lines_student_starts_as_a_sensible_one_step_generator():
    oracle, cfg = _eps_oracle(mu=0.0)
    student = LinesStudent(oracle, "teacher", scheduler_config=cfg)
    noise = torch.randn(256, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    clean = oracle.endpoint(noise, 999)  # the teacher's image for this noise (exact ODE endpoint)
    _one_step_checks(student(noise, torch.zeros(len(noise))), noise, clean)


def test_an_epsilon_teacher_copied_into_a_pd_student_starts_as_a_sensible_one_step_generator():
    oracle, cfg = _eps_oracle(mu=0.0)
    student_cfg = {**cfg, "prediction_type": parametrisation.student_prediction("epsilon")}
    noise = torch.randn(256, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x_hat = progressive.sample(oracle, student_cfg, noise, 1)
    _one_step_checks(x_hat, noise, oracle.endpoint(noise, 999))


def test_the_bounded_reading_is_exact_where_alpha_is_at_least_sigma():
    """On the line, alpha >= sigma for t >= 1/2: there S(X_t, t) is the exact posterior mean of C."""
    oracle, cfg = _eps_oracle()
    student = LinesStudent(oracle, "teacher", scheduler_config=cfg)
    g = torch.Generator().manual_seed(1)
    t = torch.tensor([0.5, 0.6, 0.8, 0.95, 0.99])
    clean = MU + S * torch.randn(len(t), 3, 4, 4, generator=g)
    noise = torch.randn(len(t), 3, 4, 4, generator=g)
    tv = t.double().view(-1, 1, 1, 1)
    x_t = (tv * clean + (1 - tv) * noise).float()
    posterior = MU + tv * S**2 * (x_t.double() - tv * MU) / (tv**2 * S**2 + (1 - tv) ** 2)
    torch.testing.assert_close(student(x_t, t).double(), posterior, rtol=0, atol=2e-3)


def test_the_gain_from_output_to_image_never_exceeds_one():
    """d x_hat / d out = sigma / max(alpha, sigma) <= 1, where the exact eps conversion reaches 156."""
    alpha = torch.linspace(0.0064, 0.99995, 200, dtype=torch.float64)
    sigma = (1 - alpha**2).sqrt()
    z = torch.randn(200, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = torch.zeros(200, dtype=torch.float64, requires_grad=True)
    parametrisation.to_x(out, z, alpha, sigma, "epsilon_bounded").sum().backward()
    assert out.grad.abs().max().item() <= 1 + 1e-12
    exact = torch.zeros(200, dtype=torch.float64, requires_grad=True)
    parametrisation.to_x(exact, z, alpha, sigma, "epsilon").sum().backward()
    assert exact.grad.abs().max().item() > 100


@pytest.mark.parametrize("kind", parametrisation.PREDICTIONS)
def test_output_for_inverts_to_x(kind):
    g = torch.Generator().manual_seed(3)
    alpha = torch.rand(64, dtype=torch.float64, generator=g).clamp(0.01, 0.999)
    sigma = (1 - alpha**2).sqrt()
    x, z = torch.randn(2, 64, dtype=torch.float64, generator=g)
    out = parametrisation.output_for(x, z, alpha, sigma, kind)
    torch.testing.assert_close(parametrisation.to_x(out, z, alpha, sigma, kind), x)


def test_student_prediction_keeps_v_and_x_and_bounds_epsilon():
    assert parametrisation.student_prediction("v_prediction") == "v_prediction"
    assert parametrisation.student_prediction("sample") == "sample"
    assert parametrisation.student_prediction("epsilon") == "epsilon_bounded"
    with pytest.raises(ValueError, match="prediction_type: 'epsilon_bounded'"):
        parametrisation.student_prediction("epsilon_bounded")
