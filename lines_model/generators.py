"""Generators: a trained student folder or the teacher, as one callable noise -> images in [-1, 1].

The one place that knows how each kind of model samples: the evaluation, the sample CLI and the seed
comparison all get their generators here.

    from lines_model.generators import load
    g = load("models/lines", steps=2)        # any student folder: Lines, baseline, models/pd/<N>step
    images = g(torch.randn(16, *g.sample_shape))   # in [-1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lines_model import progressive, runtime, samplers
from lines_model.config.runtime import RuntimeCfg
from lines_model.errors import InputError
from lines_model.imaging import to_unit
from lines_model.students import load_pd_student, load_student, read_sidecar


@dataclass
class Generator:
    name: str
    nfe: int  # network evaluations per image
    fn: Callable[[torch.Tensor], torch.Tensor]  # noise (n, C, H, W) -> images in [-1, 1]
    sample_shape: tuple[int, int, int]
    model: torch.nn.Module | None = None  # the network behind it (a LinesStudent for Lines and the baseline)

    def __call__(self, noise: torch.Tensor) -> torch.Tensor:
        return self.fn(noise)

    @torch.no_grad()
    def images(self, noise: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Images in [0, 1] (on the CPU) for every noise, in batches of `batch_size`."""
        out = [self.fn(noise[i : i + batch_size]).float().cpu() for i in range(0, len(noise), batch_size)]
        return to_unit(torch.cat(out))


def _shape(config) -> tuple[int, int, int]:
    size = config.sample_size if isinstance(config.sample_size, int) else config.sample_size[0]
    return (config.in_channels, size, size)


def load(folder: str | Path, *, steps: int | None = None, device="cpu", runtime_cfg: RuntimeCfg | None = None,
         name: str | None = None) -> Generator:
    """The generator of a student folder. Lines samples in `steps` steps along its line (default 1),
    the baseline in 1, a progressive-distillation student in its own step count; any other `steps`
    is refused. `runtime_cfg` prepares the network for inference on `device` (channels_last,
    torch.compile on CUDA)."""
    folder = Path(folder)
    meta = read_sidecar(folder)
    kind = meta.get("kind")
    if kind == "progressive":
        own = meta.get("steps")
        if not isinstance(own, int) or own < 1:
            raise InputError(f"{folder / 'lines_model.json'}: steps {own!r} is not a progressive-distillation student's")
        if steps not in (None, own):
            raise InputError(f"--steps: {folder} is a progressive-distillation student that samples in exactly {own} steps, not {steps}")
        net, cfg = load_pd_student(folder, device)
        shape = _shape(net.config)
        net = runtime.prepare_inference(net, device, runtime_cfg) if runtime_cfg else net
        return Generator(name or f"pd_{own}step", own, lambda n: progressive.sample(net, cfg, n, own), shape, net)
    if kind not in ("lines", "baseline"):
        raise InputError(f"{folder / 'lines_model.json'}: unknown student kind {kind!r}")
    k = 1 if steps is None else steps
    if kind == "baseline" and k != 1:
        raise InputError(f"--steps: {folder} is a baseline student, trained at t = 0 only: it samples in 1 step, not {k}")
    if k < 1:
        raise InputError(f"--steps: must be at least 1, got {k}")
    student, _ = load_student(folder, device)
    shape = _shape(student.unet.config)
    student = runtime.prepare_inference(student, device, runtime_cfg) if runtime_cfg else student
    return Generator(name or f"{kind}_{k}step", k, lambda n: samplers.lines_sample(student, n, k), shape, student)


def pd_students(out_dir: str | Path, steps: tuple[int, ...], **kwargs) -> list[Generator]:
    """The progressive-distillation students `out_dir/<N>step` for each N in `steps`, most steps first."""
    return [load(Path(out_dir) / f"{k}step", **kwargs) for k in sorted(steps, reverse=True)]


def from_teacher(teacher, sampler: str, steps: int, *, order: int, lambda_min: float | None, device, runtime_cfg: RuntimeCfg,
            precision: str = "fp32", name: str = "teacher") -> Generator:
    """The teacher's deterministic sampler (`pairs.sampler`) at `precision` ("fp32" | "bf16" | "fp16")."""
    unet = runtime.prepare_inference(teacher.unet, device, runtime_cfg)
    sample, cfg, autocast = samplers.teacher_sampler(sampler), teacher.scheduler_config, runtime.autocast_at(device, precision)

    def fn(n: torch.Tensor) -> torch.Tensor:
        with autocast():
            return sample(unet, cfg, n, steps, order=order, lambda_min=lambda_min).float()

    return Generator(name, steps, fn, teacher.sample_shape, unet)


def teacher_on_pd_grid(teacher, steps: int, *, device, runtime_cfg: RuntimeCfg) -> Generator:
    """The teacher as DDIM on progressive distillation's nested grid: what PD's first round distils."""
    unet = runtime.prepare_inference(teacher.unet, device, runtime_cfg)
    cfg = teacher.scheduler_config
    return Generator(f"teacher_ddim{steps}", steps, lambda n: progressive.sample(unet, cfg, n, steps), teacher.sample_shape, unet)
