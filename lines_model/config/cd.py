"""Section `cd`: consistency distillation (Song et al. 2023) from the teacher and from the Lines student."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lines_model.config.training import TrainCfg
from lines_model.errors import ConfigError
from lines_model.typed import field


@dataclass(frozen=True)
class CDCfg(TrainCfg):
    # Each entry trains one consistency model from a starting network: the teacher's copy (as the
    # paper does) or a trained one-step method's student (methods/cd.py lists which).
    init: tuple[str, ...]
    iterations: int = field(min=1)  # optimizer steps of each model
    num_points: int = field(min=2)  # N: points of the noise-level discretisation sigma_1 < ... < sigma_N
    rho: float = field(min=1.0)  # Karras et al.'s spacing exponent of that discretisation
    sigma_min: float | None = field(min=0.0)  # null: the teacher's first timestep's noise level
    sigma_max: float | None = field(min=0.0)  # null: the teacher's last timestep's (where its sampling starts)
    sigma_data: float = field(min=0.0)  # in c_skip, the pull of f(x, sigma) toward x near sigma_min
    mu: float = field(min=0.0, max=1.0)  # EMA decay of the target network theta^- (0: a stop-gradient copy)
    solver: Literal["euler", "heun"]  # the teacher's one ODE step between adjacent points (euler = DDIM)
    sampling_sigmas: tuple[float, ...]  # noise levels after the first step of k-step sampling (Algorithm 1)

    def validate(self, where: str) -> None:
        if not self.init or len(set(self.init)) != len(self.init):
            raise ConfigError(f"{where}.init: give each starting network at most once, and at least one")
        if self.sigma_min is not None and self.sigma_max is not None and not self.sigma_min < self.sigma_max:
            raise ConfigError(f"{where}.sigma_min: {self.sigma_min} must be below {where}.sigma_max={self.sigma_max}")
        if list(self.sampling_sigmas) != sorted(self.sampling_sigmas, reverse=True) or any(
            s <= 0 for s in self.sampling_sigmas
        ):
            raise ConfigError(
                f"{where}.sampling_sigmas: must be positive and decreasing, got {list(self.sampling_sigmas)}"
            )
