"""What a network's output means: the denoised image x_hat from an output in a DDPM parametrisation.

For z = alpha x + sigma eps with alpha^2 + sigma^2 = 1 (variance preserving):

- "sample": x_hat = out.
- "v_prediction": x_hat = alpha z - sigma out (Salimans & Ho 2022, v = alpha eps - sigma x).
- "epsilon": x_hat = (z - sigma out) / alpha. Exact, but its gain sigma / alpha multiplies the
  network's error by ~156 at the last timestep of a linear schedule (alpha_T = 0.0064), where a
  one-step generator starts: a teacher's eps_hat ~ z read this way is no image, and a student
  trained through it must move its output by 156x the image to reach it.
- "epsilon_bounded": x_hat = (z - sigma out) / max(alpha, sigma), how a copy of an epsilon teacher
  is read when it must become a one-step or few-step generator (Lines students with
  `student.init: teacher`, progressive distillation's students). Where alpha >= sigma (log-SNR >= 0)
  it is the exact conversion. Below, it is (alpha / sigma) times the teacher's x_hat: shrunk toward
  zero, never of the wrong sign, and at the last timestep z - eps_hat, which is how Luhman & Luhman
  (2021) read an epsilon teacher there. The gain from output to x_hat never exceeds 1, as for v, and
  a squared error on this output weights the image error by max(SNR, 1): the "truncated SNR"
  weighting of Salimans & Ho (2022, section 4).

`student_prediction` maps a teacher's prediction type to the one its copies use.
"""

from __future__ import annotations

import torch

PREDICTIONS = ("sample", "v_prediction", "epsilon", "epsilon_bounded")


def student_prediction(teacher_prediction: str) -> str:
    """The parametrisation in which a copy of a teacher network is read as a few-step generator."""
    if teacher_prediction not in PREDICTIONS[:3]:
        raise ValueError(f"prediction_type: {teacher_prediction!r} is not one of sample, v_prediction, epsilon")
    return "epsilon_bounded" if teacher_prediction == "epsilon" else teacher_prediction


def to_x(out: torch.Tensor, z: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, kind: str) -> torch.Tensor:
    """x_hat from a network output `out` at z with (alpha, sigma), in parametrisation `kind`."""
    if kind == "sample":
        return out
    if kind == "v_prediction":
        return alpha * z - sigma * out
    if kind == "epsilon":
        return (z - sigma * out) / alpha
    if kind == "epsilon_bounded":
        return (z - sigma * out) / torch.maximum(alpha, sigma)
    raise ValueError(f"prediction_type: {kind!r} is not one of {', '.join(PREDICTIONS)}")


def output_for(x: torch.Tensor, z: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, kind: str) -> torch.Tensor:
    """The output that `to_x` turns into `x` (the regression target of a student in `kind`); sigma > 0."""
    if kind == "sample":
        return x
    if kind == "v_prediction":
        return alpha * ((z - alpha * x) / sigma) - sigma * x  # v = alpha eps - sigma x
    if kind == "epsilon":
        return (z - alpha * x) / sigma
    if kind == "epsilon_bounded":
        return (z - torch.maximum(alpha, sigma) * x) / sigma
    raise ValueError(f"prediction_type: {kind!r} is not one of {', '.join(PREDICTIONS)}")
