"""Choose the cheapest DPM-Solver++ setting whose endpoints are as accurate as a given target.

The accuracy of a sampler on some noises is the median per-sample PSNR of its endpoints against a
reference solve of the same noises (a long run of a converged solver, or an exact endpoint where
one is known). Calibration tries (order, steps) candidates cheapest first, i.e. fewest network
evaluations first, and picks the first one that reaches the target PSNR, for example the PSNR of
the original DDIM-200 loop: the steps the `teacher_pairs` stage needs for equal fidelity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from lines_model.imaging import per_sample_psnr, to_unit
from lines_model.samplers import dpmsolver_pp


def median_psnr(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Median over images of the PSNR (dB) against `reference`, both in [-1, 1]. The median, not
    the mean of the MSE, so that a few hard samples do not decide a comparison of samplers."""
    return float(per_sample_psnr(to_unit(images), to_unit(reference)).median())


@dataclass(frozen=True)
class Trial:
    """One candidate that was run: solver order, steps (= network evaluations) and its PSNR."""

    order: int
    steps: int
    psnr_db: float


@dataclass(frozen=True)
class CalibrationResult:
    target_psnr_db: float
    trials: tuple[Trial, ...]  # the candidates run, in the order run: cheapest first
    chosen: Trial | None  # the cheapest candidate reaching the target; None when none did

    @property
    def met(self) -> bool:
        return self.chosen is not None

    @property
    def best(self) -> Trial:
        """The most accurate candidate run (the earliest of equals): a fallback when none met the target."""
        return max(self.trials, key=lambda t: t.psnr_db)


def cost_order(candidates: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """(order, steps) pairs sorted by cost. The cost is the step count: DPM-Solver++ makes one network
    evaluation per step whatever its order. The sort is stable, so at equal steps the caller's order
    of preference stands (e.g. order 2 before order 3)."""
    return sorted(candidates, key=lambda c: c[1])


def calibrate_steps(
    unet,
    scheduler_config: dict,
    noise: torch.Tensor,
    *,
    target_psnr_db: float,
    reference: torch.Tensor,
    candidates: Sequence[tuple[int, int]],
    lambda_min: float | None = None,
    exhaustive: bool = False,
    on_trial: Callable[[Trial], None] | None = None,
) -> CalibrationResult:
    """Run DPM-Solver++ on `noise` for each (order, steps) candidate, cheapest first, and return the
    first whose median PSNR against `reference` (the reference endpoints of the same noise) reaches
    `target_psnr_db`. The search stops there, since every later candidate costs at least as much,
    unless `exhaustive` (then every candidate is run, e.g. to plot PSNR against steps).
    `on_trial` is called after each candidate (progress logging)."""
    if not candidates:
        raise ValueError("calibrate_steps: no candidates")
    if reference.shape != noise.shape:
        raise ValueError(
            f"calibrate_steps: reference {tuple(reference.shape)} does not match noise {tuple(noise.shape)}"
        )
    for order, steps in candidates:
        if order < 1 or steps < 1:
            raise ValueError(f"calibrate_steps: bad candidate (order {order}, steps {steps})")
    trials: list[Trial] = []
    chosen = None
    for order, steps in cost_order(candidates):
        images = dpmsolver_pp(unet, scheduler_config, noise, steps, order=order, lambda_min=lambda_min)
        trial = Trial(order=order, steps=steps, psnr_db=median_psnr(images, reference))
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        if chosen is None and trial.psnr_db >= target_psnr_db:
            chosen = trial
            if not exhaustive:
                break
    return CalibrationResult(target_psnr_db=target_psnr_db, trials=tuple(trials), chosen=chosen)
