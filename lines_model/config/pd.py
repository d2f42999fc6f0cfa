"""Section `pd`: progressive distillation from the teacher's DDIM."""

from __future__ import annotations

from dataclasses import dataclass
from lines_model.config.training import TrainCfg
from lines_model.errors import ConfigError
from lines_model.typed import field


@dataclass(frozen=True)
class PDCfg(TrainCfg):
    start_steps: int = field(min=2)  # teacher DDIM steps of the first round
    end_steps: int = field(min=1)  # steps of the last student
    iters_per_round: int = field(min=1)  # optimizer steps of each round, exactly

    def validate(self, where: str) -> None:
        ratio = self.start_steps // self.end_steps
        if self.start_steps % self.end_steps or ratio & (ratio - 1) or ratio < 2:
            raise ConfigError(
                f"{where}.start_steps: {self.start_steps} must be a power-of-two multiple (>= 2x) of "
                f"{where}.end_steps={self.end_steps}"
            )

    def round_steps(self) -> list[int]:
        """Student step counts of the rounds, in order: start/2, start/4, ..., end."""
        out, n = [], self.start_steps // 2
        while n >= self.end_steps:
            out.append(n)
            n //= 2
        return out
