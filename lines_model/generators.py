"""Generators: a trained model or the teacher, as one callable noise -> images in [-1, 1].

Every method builds its students' generators (methods/); the teacher's deterministic sampler is
built here. The evaluation, the sample command and the seed comparison all score `Generator`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lines_model import runtime, samplers
from lines_model.config.runtime import RuntimeCfg
from lines_model.imaging import to_unit


@dataclass
class Generator:
    name: str
    nfe: int  # network evaluations per image
    fn: Callable[[torch.Tensor], torch.Tensor]  # noise (n, C, H, W) -> images in [-1, 1]
    sample_shape: tuple[int, int, int]
    model: torch.nn.Module | None = None  # the network behind it
    label: str = ""  # in tables and figures (default: the name)

    def __post_init__(self):
        self.label = self.label or self.name

    def __call__(self, noise: torch.Tensor) -> torch.Tensor:
        return self.fn(noise)

    @torch.no_grad()
    def images(self, noise: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Images in [0, 1] (on the CPU) for every noise, in batches of `batch_size`."""
        out = [self.fn(noise[i : i + batch_size]).float().cpu() for i in range(0, len(noise), batch_size)]
        return to_unit(torch.cat(out))


def sample_shape(unet_config) -> tuple[int, int, int]:
    size = unet_config.sample_size if isinstance(unet_config.sample_size, int) else unet_config.sample_size[0]
    return (unet_config.in_channels, size, size)


def from_teacher(
    teacher,
    sampler: str,
    steps: int,
    *,
    order: int,
    lambda_min: float | None,
    device,
    runtime_cfg: RuntimeCfg,
    precision: str = "fp32",
    name: str = "teacher",
) -> Generator:
    """The teacher's deterministic sampler (`pairs.sampler`) at `precision` ("fp32" | "bf16" | "fp16")."""
    unet = runtime.prepare_inference(teacher.unet, device, runtime_cfg)
    sample, cfg, autocast = (
        samplers.teacher_sampler(sampler),
        teacher.scheduler_config,
        runtime.autocast_at(device, precision),
    )

    def fn(n: torch.Tensor) -> torch.Tensor:
        with autocast():
            return sample(unet, cfg, n, steps, order=order, lambda_min=lambda_min).float()

    return Generator(
        name, steps, fn, teacher.sample_shape, unet, label=f"teacher ({steps} NFE)" if name == "teacher" else name
    )
