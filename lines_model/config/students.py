"""Sections `student`, `train_lines` and `train_baseline`: the one-step students and their training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lines_model.config.training import TrainCfg
from lines_model.errors import ConfigError
from lines_model.typed import field


@dataclass(frozen=True)
class StudentCfg:
    """The one-step students of Lines and the baseline.

    init "teacher": the student is a copy of the teacher's network in the teacher's own
    parametrisation (students.LinesStudent), so the architecture keys below are not used.
    init "random": a fresh diffusers UNet2DModel of the architecture below; t enters as t * t_scale.
    """

    init: Literal["teacher", "random"]
    block_out_channels: tuple[int, ...]
    layers_per_block: int = field(min=1)
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    norm_num_groups: int = field(min=1)
    t_scale: float = field(min=1.0)

    def validate(self, where: str) -> None:
        n = len(self.block_out_channels)
        for key in ("down_block_types", "up_block_types"):
            if len(getattr(self, key)) != n:
                raise ConfigError(f"{where}.{key}: needs {n} entries, one per block_out_channels entry")
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ConfigError(
                    f"{where}.norm_num_groups: {self.norm_num_groups} must divide every block_out_channels entry ({c})"
                )

    def check_image_size(self, size: int) -> None:
        """The random-init UNet halves the image once per level after the first."""
        levels = len(self.block_out_channels)
        if size % 2 ** (levels - 1):
            raise ConfigError(
                f"student.block_out_channels: {levels} levels halve the image {levels - 1} times, "
                f"which a {size}x{size} image (teacher's sample size) cannot take"
            )


@dataclass(frozen=True)
class OneStepCfg(TrainCfg):
    """The training of a one-step student on pairs, by epochs (methods/one_step.py)."""

    epochs: int = field(min=1)


@dataclass(frozen=True)
class BaselineCfg(OneStepCfg):
    pass


@dataclass(frozen=True)
class LinesCfg(OneStepCfg):
    # Distribution of t on the line: the one-step sample lives at t = 0 (losses.sample_t).
    t_dist: Literal["uniform", "logit_normal", "beta"]
